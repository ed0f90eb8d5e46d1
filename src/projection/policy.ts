/**
 * What a projection does when its handler fails on an event: retry it
 * with backoff, then stop, skip it or park it. Validated before a run
 * touches the database.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/validate.ts";

/**
 * A projection's error policy: a field of {@linkcode Projection}
 * (`onError`), or a processor-wide default (`ProcessorConfig.onError`);
 * the projection's own policy, when it has one, replaces the default
 * whole.
 *
 * - `retries` (default 0): how many times the handler runs again on the
 *   failing event before `then` applies. Each failure rolls back only the
 *   handler's own writes: the events of the batch before it commit with
 *   the checkpoint, and the failing event's segment waits out the backoff
 *   while the worker's other segments go on.
 * - `backoff` (default `{ initialMs: 100, maxMs: 10_000 }`): the wait
 *   before a retry, doubling from `initialMs` up to `maxMs`.
 * - `then` (default `"stop"`): after the last retry, `"stop"` rejects the
 *   run with the `ProjectionError` (the next run starts at the failing
 *   event); `"skip"` records the event as skipped in the parked-events
 *   table and goes on; `"park"` moves it to the parked-events table, in
 *   the transaction that moves the checkpoint past it, for
 *   `replayParked` or `discardParked` later.
 * - `park` (default `"aggregate"`): with `then: "park"`, the later events
 *   of a parked event's aggregate are parked behind it (reason `held`), so
 *   the read model never sees an aggregate's events out of order;
 *   `"event"` parks only the failing event and applies the rest.
 * - `handlerTimeoutMs` (default none): a handler that has not settled
 *   after this long counts as failed; its transaction is rolled back and
 *   anything it sends later is refused.
 *
 * Transient database errors (a lost connection, a serialization failure)
 * are not handler failures: they are retried by the processor as before
 * and never count as attempts. Nor is the database refusing the handler's
 * SQL itself (a read model's table, column, type or schema that does not
 * exist, a syntax error), which every event would meet alike: it stops
 * the run whatever the policy, and parks or skips nothing.
 *
 * @example Retry three times, then park
 * ```ts
 * import type { ErrorPolicy } from "@getpup/pupsourcing/projection";
 *
 * const policy: ErrorPolicy = {
 *   retries: 3,
 *   backoff: { initialMs: 100, maxMs: 10_000 },
 *   then: "park",
 * };
 * ```
 */
export interface ErrorPolicy {
  /** Handler runs after the first failure, before `then` applies; default 0. */
  retries?: number;
  /** The wait before each retry; default `{ initialMs: 100, maxMs: 10_000 }`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** What happens after the last retry; default `"stop"`. */
  then?: "stop" | "skip" | "park";
  /** Park an aggregate's later events behind a parked one (`"aggregate"`, default) or not. */
  park?: "aggregate" | "event";
  /** Milliseconds after which a handler that has not settled counts as failed; default none. */
  handlerTimeoutMs?: number;
}

/**
 * A validated {@linkcode ErrorPolicy}, defaults filled in, as
 * `ProjectionProcessor.config.onError` shows the processor's default.
 *
 * @example
 * ```ts
 * import type { ResolvedPolicy } from "@getpup/pupsourcing/projection";
 *
 * const describe = (p: ResolvedPolicy) => `${p.retries} retries, then ${p.then}`;
 * ```
 */
export interface ResolvedPolicy {
  /** Handler runs after the first failure. */
  retries: number;
  /** The first retry's wait, in milliseconds. */
  initialMs: number;
  /** The longest wait, in milliseconds. */
  maxMs: number;
  /** What happens after the last retry. */
  then: "stop" | "skip" | "park";
  /** Park an aggregate's later events behind its parked ones. */
  keepOrder: boolean;
  /** Milliseconds after which a handler counts as failed, if set. */
  handlerTimeoutMs: number | undefined;
}

/** Today's behaviour, the default: no retry, stop. */
export const DEFAULT_POLICY: ResolvedPolicy = Object.freeze({
  retries: 0,
  initialMs: 100,
  maxMs: 10_000,
  then: "stop",
  keepOrder: true,
  handlerTimeoutMs: undefined,
});

/** setTimeout's limit (about 24.8 days). */
const MAX_DELAY = 2_147_483_647;
/** More retries than this is a mistake, not a policy. */
const MAX_RETRIES = 1_000;

/**
 * Validates `policy` (named `field` in errors) and fills in the defaults
 * from `fallback`; `undefined` gives `fallback` itself.
 *
 * @throws {ValidationError} naming the first bad field.
 */
export function resolvePolicy(
  field: string,
  policy: ErrorPolicy | undefined,
  fallback: ResolvedPolicy = DEFAULT_POLICY,
): ResolvedPolicy {
  if (policy === undefined) return fallback;
  const checked = checkOptions(field, policy, [
    "retries",
    "backoff",
    "then",
    "park",
    "handlerTimeoutMs",
  ]);
  const retries = checked.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    throw new ValidationError(
      `${field}.retries`,
      `an integer from 0 to ${MAX_RETRIES}`,
      show(retries),
    );
  }
  const backoff = checkOptions(`${field}.backoff`, checked.backoff, ["initialMs", "maxMs"]);
  const initialMs = backoff.initialMs ?? DEFAULT_POLICY.initialMs;
  if (!isDelay(initialMs)) {
    throw new ValidationError(
      `${field}.backoff.initialMs`,
      `milliseconds, from 0 to ${MAX_DELAY}`,
      show(initialMs),
    );
  }
  const maxMs = backoff.maxMs ?? Math.max(DEFAULT_POLICY.maxMs, initialMs);
  if (!isDelay(maxMs) || maxMs < initialMs) {
    throw new ValidationError(
      `${field}.backoff.maxMs`,
      `milliseconds, from backoff.initialMs (${initialMs}) to ${MAX_DELAY}`,
      show(maxMs),
    );
  }
  const then = checked.then ?? "stop";
  if (then !== "stop" && then !== "skip" && then !== "park") {
    throw new ValidationError(`${field}.then`, `"stop", "skip" or "park"`, show(then));
  }
  const park = checked.park ?? "aggregate";
  if (park !== "aggregate" && park !== "event") {
    throw new ValidationError(`${field}.park`, `"aggregate" or "event"`, show(park));
  }
  const handlerTimeoutMs = checked.handlerTimeoutMs;
  if (handlerTimeoutMs !== undefined && (!isDelay(handlerTimeoutMs) || handlerTimeoutMs < 1)) {
    throw new ValidationError(
      `${field}.handlerTimeoutMs`,
      `milliseconds, from 1 to ${MAX_DELAY}, or undefined`,
      show(handlerTimeoutMs),
    );
  }
  return { retries, initialMs, maxMs, then, keepOrder: park === "aggregate", handlerTimeoutMs };
}

/** The wait before retry number `attempt` (1, 2, ...): doubling from `initialMs`, up to `maxMs`. */
export function retryDelay(policy: ResolvedPolicy, attempt: number): number {
  return Math.min(policy.initialMs * 2 ** Math.min(attempt - 1, 30), policy.maxMs);
}

function isDelay(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= MAX_DELAY;
}
