/**
 * A run's memory of its handler failures: how many times each failing
 * event has failed, and which segments wait out a retry's backoff. Held
 * in memory only: a worker that restarts starts counting again, which
 * retries an event more, never less, and never applies one twice.
 *
 * @module
 */

import type { PersistedEvent } from "../es/event.ts";
import { segmentOf } from "../es/segment.ts";

/** Failed attempts by event, and segments held back until a retry is due. */
export class Failures {
  /** Failed attempts, by global position. */
  readonly #attempts = new Map<bigint, number>();
  /** Segment → `performance.now()` time its retry is due. */
  readonly #waiting = new Map<number, number>();
  readonly #segments: number;

  /** A tracker for a projection of `segments` segments. */
  constructor(segments: number) {
    this.#segments = segments;
  }

  /** Counts one more failure of `event`, and returns its attempts so far. */
  fail(event: PersistedEvent): number {
    const attempts = (this.#attempts.get(event.globalPosition) ?? 0) + 1;
    this.#attempts.set(event.globalPosition, attempts);
    return attempts;
  }

  /** Forgets the failures of `events`, now applied, parked or skipped. */
  settle(events: readonly PersistedEvent[]): void {
    if (this.#attempts.size === 0) return;
    for (const event of events) this.#attempts.delete(event.globalPosition);
  }

  /** Holds `event`'s segment back for `delayMs`. */
  wait(event: PersistedEvent, delayMs: number): void {
    this.#waiting.set(segmentOf(event.aggregateId, this.#segments), performance.now() + delayMs);
  }

  /** The segments of `owned` not waiting for a retry (those whose wait is over are freed). */
  ready(owned: readonly number[]): readonly number[] {
    if (this.#waiting.size === 0) return owned;
    const now = performance.now();
    for (const [segment, due] of this.#waiting) if (due <= now) this.#waiting.delete(segment);
    return owned.filter((segment) => !this.#waiting.has(segment));
  }

  /** Milliseconds until the next retry is due, or `undefined` when none waits. */
  nextDueIn(): number | undefined {
    if (this.#waiting.size === 0) return undefined;
    return Math.max(0, Math.min(...this.#waiting.values()) - performance.now());
  }
}
