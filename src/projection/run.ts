/**
 * What one run of a projection takes and what it gives back: its options
 * (checked here, for the processor and the runner alike) and its outcome.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/show.ts";

/**
 * How long {@linkcode ProjectionProcessor.run} runs:
 *
 * - `"continuous"` (default): until the signal aborts it or a handler fails.
 * - `"until_caught_up"`: returns once it has processed every event that was
 *   below the safe horizon when it started (for tests and batch jobs).
 *
 * @example
 * ```ts
 * import type { RunMode } from "@getpup/pupsourcing/projection";
 *
 * const mode: RunMode = "until_caught_up";
 * ```
 */
export type RunMode = "continuous" | "until_caught_up";

/**
 * Options of {@linkcode ProjectionProcessor.run}.
 *
 * @example Stop on Ctrl-C
 * ```ts
 * import type { RunOptions } from "@getpup/pupsourcing/projection";
 *
 * const controller = new AbortController();
 * const options: RunOptions = { signal: controller.signal };
 * ```
 */
export interface RunOptions {
  /** Aborting it stops the processor; `run` then resolves `"aborted"`. */
  signal?: AbortSignal;
  /** Default `"continuous"`. */
  mode?: RunMode;
}

/**
 * How a run ended, as {@linkcode ProjectionProcessor.run} resolves it. A
 * run that fails rejects instead.
 *
 * - `status`: `"caught_up"` when an `"until_caught_up"` run reached its
 *   goal; `"aborted"` when the signal stopped it first (in either mode,
 *   also while it was waiting for an unreachable database). A run that
 *   ends `"aborted"` may have left events unprocessed.
 * - `processed`: events handled and committed by this run.
 * - `batches`: batch transactions this run committed with at least one
 *   event in them.
 * - `retries`: transient database errors this run waited out (each one
 *   also logged).
 * - `retried`, `skipped`, `parked`: handler failures this run retried
 *   (see `ErrorPolicy`), events it recorded as skipped, and
 *   events it parked (failed, or held behind a parked event of their
 *   aggregate).
 *
 * @example Tell a finished catch-up from an interrupted one
 * ```ts
 * import type { RunOutcome } from "@getpup/pupsourcing/projection";
 *
 * function report(outcome: RunOutcome): string {
 *   return outcome.status === "caught_up"
 *     ? `caught up: ${outcome.processed} events in ${outcome.batches} batches`
 *     : `stopped early after ${outcome.processed} events`;
 * }
 * console.log(report({
 *   status: "caught_up",
 *   processed: 5,
 *   batches: 3,
 *   retries: 0,
 *   retried: 0,
 *   skipped: 0,
 *   parked: 0,
 * }));
 * ```
 */
export interface RunOutcome {
  /** Why the run ended. */
  status: "caught_up" | "aborted";
  /** Events handled and committed. */
  processed: number;
  /** Committed batches that held at least one event. */
  batches: number;
  /** Transient database errors retried. */
  retries: number;
  /** Handler failures retried by the error policy. */
  retried: number;
  /** Events recorded as skipped by the error policy. */
  skipped: number;
  /** Events parked by the error policy. */
  parked: number;
}

/**
 * Checks `options` of a run (an options object or undefined, with only
 * the known keys of {@linkcode RunOptions}), and returns its signal and
 * mode. `field` names it in errors; `known` lists every key the caller
 * accepts (the runners accept more than `signal` and `mode`).
 *
 * @throws {ValidationError} naming `field` or `field.key`.
 */
export function checkRunOptions<T extends RunOptions>(
  field: string,
  options: T | undefined,
  known: readonly (keyof T & string)[],
): { options: Partial<T>; signal: AbortSignal | undefined; mode: RunMode | undefined } {
  const checked = checkOptions(field, options, known);
  return {
    options: checked,
    signal: optionalSignal(`${field}.signal`, checked.signal),
    mode: optionalMode(`${field}.mode`, checked.mode),
  };
}

/** Throws unless `signal` is undefined or an AbortSignal. */
function optionalSignal(field: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new ValidationError(field, "an AbortSignal or undefined", show(signal));
}

/** Throws unless `mode` is undefined or a {@linkcode RunMode}. */
function optionalMode(field: string, mode: unknown): RunMode | undefined {
  if (mode === undefined || mode === "continuous" || mode === "until_caught_up") return mode;
  throw new ValidationError(field, `"continuous", "until_caught_up" or undefined`, show(mode));
}
