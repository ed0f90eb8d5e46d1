/**
 * Runs a set of workers as one unit: it settles only once every worker has
 * stopped, and the first failure stops the rest.
 *
 * @module
 */

import type { Logger } from "../es/logger.ts";
import type { RunMode, RunOptions } from "../projection/mod.ts";

/** One worker the supervisor starts: a processor's `run` on one partition. */
export interface Worker {
  /** Names the worker in log lines, such as `orders[2/4]`. */
  readonly label: string;
  /** Where to report a failure that came after the one being rethrown. */
  readonly logger?: Logger;
  /** Runs until `signal` aborts (or the run mode ends it); rejects on failure. */
  run(signal: AbortSignal): Promise<void>;
}

/**
 * Starts every worker at once and waits until all have settled.
 *
 * - When the caller's `signal` aborts, every worker is told to stop, and the
 *   returned promise resolves once they all have.
 * - When a worker fails, the others are told to stop; once they have, the
 *   returned promise rejects with that first failure (as thrown, not
 *   wrapped). Later failures go to the failing worker's logger, if any.
 * - When `signal` is already aborted, nothing is started.
 */
export async function superviseWorkers(
  workers: readonly Worker[],
  signal: AbortSignal | undefined,
): Promise<void> {
  if (signal?.aborted) return;
  const controller = new AbortController();
  const forward = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", forward, { once: true });
  let failure: { error: unknown } | undefined;
  const watch = async (worker: Worker) => {
    try {
      await worker.run(controller.signal);
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
}

/** The options of one worker's run; `mode` only when the caller gave one. */
export function runOptions(signal: AbortSignal, mode: RunMode | undefined): RunOptions {
  return mode === undefined ? { signal } : { signal, mode };
}
