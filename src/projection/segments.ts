/**
 * Which segments a worker owns. Segments are fixed per projection; workers
 * come and go, so each segment keeps its own checkpoint and changing the
 * worker count never skips or repeats an event.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";

/**
 * The segment count of a projection unless configured otherwise: up to 16
 * workers can share a projection.
 *
 * @example
 * ```ts
 * import { DEFAULT_SEGMENTS, ownedSegments } from "@getpup/pupsourcing/projection";
 *
 * console.log(ownedSegments(0, 2, DEFAULT_SEGMENTS).length); // 8
 * ```
 */
export const DEFAULT_SEGMENTS = 16;

/**
 * The largest segment count accepted: every segment is a checkpoint row,
 * and the count bounds the number of workers, not the throughput of one.
 *
 * @example
 * ```ts
 * import { MAX_SEGMENTS } from "@getpup/pupsourcing/projection";
 *
 * console.log(MAX_SEGMENTS); // 1024
 * ```
 */
export const MAX_SEGMENTS = 1024;

/**
 * The segments that worker `partitionKey` of `totalPartitions` owns: every
 * `s` in `0..segments-1` with `s % totalPartitions === partitionKey`.
 *
 * @throws {ValidationError} on a partition or segment count that does not
 * fit (see {@linkcode validatePartitioning}).
 *
 * @example Worker 1 of 4 over 16 segments
 * ```ts
 * import { ownedSegments } from "@getpup/pupsourcing/projection";
 *
 * console.log(ownedSegments(1, 4, 16)); // [1, 5, 9, 13]
 * ```
 */
export function ownedSegments(
  partitionKey: number,
  totalPartitions: number,
  segments: number = DEFAULT_SEGMENTS,
): number[] {
  validatePartitioning(partitionKey, totalPartitions, segments);
  const owned: number[] = [];
  for (let s = partitionKey; s < segments; s += totalPartitions) owned.push(s);
  return owned;
}

/**
 * Throws unless `segments` is an integer in 1..1024, `totalPartitions` an
 * integer in 1..segments (a worker without a segment would idle for ever)
 * and `partitionKey` an integer in 0..totalPartitions-1.
 *
 * @throws {ValidationError}
 *
 * @example
 * ```ts
 * import { validatePartitioning } from "@getpup/pupsourcing/projection";
 *
 * validatePartitioning(3, 4, 16); // fine
 * ```
 */
export function validatePartitioning(
  partitionKey: number,
  totalPartitions: number,
  segments: number,
): void {
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SEGMENTS) {
    throw new ValidationError("segments", `an integer from 1 to ${MAX_SEGMENTS}`, show(segments));
  }
  if (!Number.isInteger(totalPartitions) || totalPartitions < 1) {
    throw new ValidationError("totalPartitions", "an integer >= 1", show(totalPartitions));
  }
  if (totalPartitions > segments) {
    throw new ValidationError(
      "totalPartitions",
      `at most segments (${segments}): each partition needs a segment of its own`,
      show(totalPartitions),
    );
  }
  if (!Number.isInteger(partitionKey) || partitionKey < 0 || partitionKey >= totalPartitions) {
    throw new ValidationError(
      "partitionKey",
      `an integer from 0 to totalPartitions - 1 (${totalPartitions - 1})`,
      show(partitionKey),
    );
  }
}
