/**
 * UUIDv7 event ids (RFC 9562): time-ordered, so new ids land at the right
 * end of the `event_id` index instead of all over it.
 *
 * @module
 */

const HEX: string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/**
 * Returns a new UUIDv7: 48 bits of Unix milliseconds, then random bits.
 *
 * @example
 * ```ts
 * import { uuidv7 } from "@getpup/pupsourcing";
 *
 * const id = uuidv7();
 * console.log(id.length); // 36
 * ```
 */
export function uuidv7(): string {
  const bytes = randomBytes();
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return formatUuid(bytes);
}

/**
 * Random bytes are drawn 4 KiB at a time: one `getRandomValues` call per
 * id cost a 1000-event append under Node about 8 µs of client CPU per
 * event. Each id gets 16 fresh bytes of the pool, never reused.
 */
const POOL = new Uint8Array(4096);
let used = POOL.length;

/** The next 16 random bytes, in a new array (the caller overwrites some). */
function randomBytes(): Uint8Array {
  if (used === POOL.length) {
    crypto.getRandomValues(POOL);
    used = 0;
  }
  used += 16;
  return POOL.slice(used - 16, used);
}

/** The canonical 36-character form of 16 bytes. */
export function formatUuid(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += "-";
    out += HEX[bytes[i]];
  }
  return out;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Tells whether `value` is a UUID in its canonical 36-character form.
 *
 * @example
 * ```ts
 * import { isUuid } from "@getpup/pupsourcing";
 *
 * console.log(isUuid("550e8400-e29b-41d4-a716-446655440000")); // true
 * console.log(isUuid("not-a-uuid")); // false
 * ```
 */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}
