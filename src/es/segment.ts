/**
 * How events are spread over segments: FNV-1a (32 bit) of the aggregate
 * id's UTF-8 bytes, modulo the segment count. Every event of an aggregate
 * lands in the same segment, so one worker sees them in order.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * FNV-1a, 32 bit, of the UTF-8 bytes of `text`, as an unsigned integer.
 *
 * @example
 * ```ts
 * import { fnv1a32 } from "@getpup/pupsourcing";
 *
 * console.log(fnv1a32("a")); // 3826002220
 * ```
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * The segment, in `0..segments-1`, that owns the events of `aggregateId`.
 *
 * @example
 * ```ts
 * import { segmentOf } from "@getpup/pupsourcing";
 *
 * console.log(segmentOf("user-1", 16)); // 4
 * ```
 */
export function segmentOf(aggregateId: string, segments: number): number {
  return fnv1a32(aggregateId) % segments;
}
