/**
 * JSON that keeps bigints: a bigint is written as `{"$bigint":"123"}` and
 * read back as `123n`, so positions, versions and amounts survive a round
 * trip through an event payload or a snapshot.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `value` as UTF-8 JSON bytes, bigints included.
 *
 * @example
 * ```ts
 * import { fromJsonBytes, toJsonBytes } from "@getpup/pupsourcing";
 *
 * const bytes = toJsonBytes({ amount: 10n });
 * console.log(fromJsonBytes(bytes)); // { amount: 10n }
 * ```
 */
export function toJsonBytes(value: unknown): Uint8Array {
  return encoder.encode(
    JSON.stringify(value, (_, v) => typeof v === "bigint" ? { $bigint: v.toString() } : v),
  );
}

/**
 * The value of UTF-8 JSON bytes written by {@linkcode toJsonBytes}.
 *
 * @throws {SyntaxError} when the bytes are not JSON.
 *
 * @example
 * ```ts
 * import { fromJsonBytes } from "@getpup/pupsourcing";
 *
 * console.log(fromJsonBytes(new TextEncoder().encode('{"n":{"$bigint":"7"}}'))); // { n: 7n }
 * ```
 */
export function fromJsonBytes(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes), (_, v) => {
    if (typeof v === "object" && v !== null && typeof v.$bigint === "string") {
      const keys = Object.keys(v);
      if (keys.length === 1) return BigInt(v.$bigint);
    }
    return v;
  });
}
