/**
 * Runs a set of workers as one unit: it settles only once every worker has
 * stopped, and the first failure stops the rest.
 *
 * @module
 */

import type { Logger } from "../es/logger.ts";
import type { RunMode, RunOptions, RunOutcome } from "../projection/mod.ts";

/**
 * How one worker of a runner ended: its processor's {@linkcode RunOutcome}
 * (`status`, `processed`, `batches`, `retries`), and which projection and
 * partition it ran. The runners resolve to one per worker, in the order
 * they were given (partition keys ascending for
 * `runProjectionPartitions`, the entries' order for
 * `runMultipleProjections`). A worker the runner never started (its
 * signal was already aborted) is `"aborted"` with zero counts.
 *
 * @example Check that every partition caught up
 * ```ts
 * import type { WorkerOutcome } from "@getpup/pupsourcing/runner";
 *
 * function allCaughtUp(outcomes: readonly WorkerOutcome[]): boolean {
 *   return outcomes.every((outcome) => outcome.status === "caught_up");
 * }
 * console.log(allCaughtUp([{
 *   projection: "orders",
 *   partitionKey: 0,
 *   totalPartitions: 1,
 *   status: "caught_up",
 *   processed: 3,
 *   batches: 1,
 *   retries: 0,
 *   retried: 0,
 *   skipped: 0,
 *   parked: 0,
 * }])); // true
 * ```
 */
export interface WorkerOutcome extends RunOutcome {
  /** The projection's name. */
  projection: string;
  /** The worker's partition, in `0..totalPartitions-1`. */
  partitionKey: number;
  /** How many partitions share the projection. */
  totalPartitions: number;
  /**
   * Group mode (`runGroupMembers`): the member's id. `partitionKey` is
   * then its index and `totalPartitions` the member count.
   */
  memberId?: string;
}

/** One worker the supervisor starts: a processor's `run` on one partition. */
export interface Worker {
  /** Names the worker in log lines, such as `orders[2/4]`. */
  readonly label: string;
  /** The projection and partition, as its outcome reports them. */
  readonly place: Pick<
    WorkerOutcome,
    "projection" | "partitionKey" | "totalPartitions" | "memberId"
  >;
  /** Where to report a failure that came after the one being rethrown. */
  readonly logger?: Logger;
  /** Runs until `signal` aborts (or the run mode ends it); rejects on failure. */
  run(signal: AbortSignal): Promise<RunOutcome>;
}

/** The outcome of a worker that never ran. */
const NOT_STARTED: RunOutcome = {
  status: "aborted",
  processed: 0,
  batches: 0,
  retries: 0,
  retried: 0,
  skipped: 0,
  parked: 0,
};

/**
 * Starts every worker at once and waits until all have settled.
 *
 * - When the caller's `signal` aborts, every worker is told to stop, and the
 *   returned promise resolves once they all have.
 * - When a worker fails, the others are told to stop; once they have, the
 *   returned promise rejects with that first failure (as thrown, not
 *   wrapped). Later failures go to the failing worker's logger, if any.
 * - When `signal` is already aborted, nothing is started.
 *
 * Resolves to each worker's outcome, in the order of `workers`.
 */
export async function superviseWorkers(
  workers: readonly Worker[],
  signal: AbortSignal | undefined,
): Promise<WorkerOutcome[]> {
  const outcomes = workers.map((worker) => ({ ...worker.place, ...NOT_STARTED }));
  if (signal?.aborted) return outcomes;
  const controller = new AbortController();
  const forward = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", forward, { once: true });
  let failure: { error: unknown } | undefined;
  const watch = async (worker: Worker, index: number) => {
    try {
      outcomes[index] = { ...worker.place, ...await worker.run(controller.signal) };
    } catch (error) {
      if (failure === undefined) {
        failure = { error };
        controller.abort(error);
      } else {
        worker.logger?.error("projection worker failed while the runner was stopping", {
          worker: worker.label,
          error,
        });
      }
    }
  };
  try {
    // `watch` never rejects, so this waits for every worker, whatever happens.
    await Promise.all(workers.map(watch));
  } finally {
    signal?.removeEventListener("abort", forward);
  }
  if (failure !== undefined) throw failure.error;
  return outcomes;
}

/** The options of one worker's run; `mode` only when the caller gave one. */
export function runOptions(signal: AbortSignal, mode: RunMode | undefined): RunOptions {
  return mode === undefined ? { signal } : { signal, mode };
}
