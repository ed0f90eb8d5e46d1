/**
 * The largest payloads the store takes, checked before anything is sent.
 *
 * @module
 */

const MiB = 1024 * 1024;

/**
 * The largest payload of one event, in bytes: 128 MiB.
 *
 * A payload travels to PostgreSQL as hex text, two characters a byte. Past
 * about 256 MiB that text no longer fits in a JavaScript string (V8, under
 * Deno and Node, stops at 2^29 - 24 characters), and PostgreSQL's own
 * limit on one value is 1 GB. 128 MiB leaves room below both; a larger
 * append is refused with a `ValidationError` naming this limit. Large
 * files belong outside the event, with a reference in it.
 *
 * @example Check before building an event
 * ```ts
 * import { MAX_EVENT_PAYLOAD_BYTES } from "@getpup/pupsourcing";
 *
 * const payload = new Uint8Array(1024);
 * console.log(payload.byteLength <= MAX_EVENT_PAYLOAD_BYTES); // true
 * ```
 */
export const MAX_EVENT_PAYLOAD_BYTES: number = 128 * MiB;

/**
 * The largest total of the payloads of one append (one call of `append`,
 * or of `appendMany` with all its entries), in bytes: 192 MiB.
 *
 * The events of one append travel as one array parameter, whose hex text
 * must fit in one JavaScript string like a single payload's.
 *
 * @example Split a large import into appends that fit
 * ```ts
 * import { MAX_APPEND_PAYLOAD_BYTES } from "@getpup/pupsourcing";
 *
 * console.log(MAX_APPEND_PAYLOAD_BYTES / 1024 / 1024); // 192
 * ```
 */
export const MAX_APPEND_PAYLOAD_BYTES: number = 192 * MiB;
