/**
 * All partitions of one projection in one process.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import type { ProcessorConfig, Projection, RunMode } from "../projection/mod.ts";
import { checkRunOptions } from "../projection/run.ts";
import { progressInterval, reportedProcessor } from "./report.ts";
import { runOptions, superviseWorkers, type Worker, type WorkerOutcome } from "./supervise.ts";
import { positiveInteger, validateProjection } from "./validate.ts";

/**
 * Options of {@linkcode runProjectionPartitions}.
 *
 * @example Catch up with 4 workers of 500-event batches, then return
 * ```ts
 * import type { PartitionsOptions } from "@getpup/pupsourcing/runner";
 *
 * const options: PartitionsOptions = { mode: "until_caught_up", config: { batchSize: 500 } };
 * ```
 */
export interface PartitionsOptions {
  /** Stops every worker when it aborts; the run then resolves. */
  signal?: AbortSignal;
  /**
   * `"continuous"` (default) runs until `signal` aborts;
   * `"until_caught_up"` returns once every partition has caught up.
   */
  mode?: RunMode;
  /**
   * The processor configuration every partition shares. The runner sets
   * `partitionKey` and `totalPartitions` itself.
   */
  config?: Omit<ProcessorConfig, "partitionKey" | "totalPartitions">;
  /**
   * With a logger in `config`, each worker logs where it starts and its
   * segments, then every this many milliseconds while it has work, a
   * progress line (events processed, rate, lag); default 10 000,
   * `Infinity` for none.
   */
  progressIntervalMs?: number;
}

/**
 * Runs `totalPartitions` processors of one projection in this process, one
 * per partition key `0..totalPartitions-1`, so that together they cover
 * every segment of the projection.
 *
 * The promise settles only after every worker has stopped:
 *
 * - it resolves when `options.signal` aborts (or, in `"until_caught_up"`
 *   mode, when every partition has caught up), to one
 *   {@linkcode WorkerOutcome} per partition, partition keys ascending:
 *   each says `"caught_up"` or `"aborted"`, with its counts;
 * - it rejects when a worker fails, with that worker's error (usually a
 *   `ProjectionError`); the other workers are stopped first. Transient
 *   database errors are retried inside each worker and stop nothing
 *   (see `retryTransientErrors`).
 *
 * Each worker holds a connection of `sql`'s pool while it processes a
 * batch: give the pool at least `totalPartitions` connections, or workers
 * wait for each other. (The wake-up `LISTEN` has its own connection,
 * outside the pool.)
 *
 * @throws {ValidationError} before anything starts, when `totalPartitions`
 * is not a positive integer, the projection is invalid (no name, no
 * `handle`, an empty scope list), the options are not an object or hold
 * an unknown key, the signal is not an `AbortSignal`, the mode is
 * unknown, or the processor configuration is invalid (`totalPartitions`
 * above `segments`, ...).
 * @throws {DatabaseUnavailableError} in `"until_caught_up"` mode, when a
 * worker could not reach the database for its `catchUpTimeout`.
 *
 * @example Four workers in one process, stopped by SIGTERM
 * ```ts ignore
 * import process from "node:process";
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { runProjectionPartitions } from "@getpup/pupsourcing/runner";
 *
 * const sql = postgres(process.env.DATABASE_URL!, { max: 8 });
 * const store = new PostgresStore();
 * const controller = new AbortController();
 * process.once("SIGTERM", () => controller.abort());
 *
 * const outcomes = await runProjectionPartitions(sql, store, {
 *   name: "order_totals",
 *   async handle(event, tx) {
 *     await tx`insert into order_log (event_id) values (${event.eventId})`;
 *   },
 * }, 4, { signal: controller.signal });
 * for (const { partitionKey, processed } of outcomes) {
 *   console.log(`partition ${partitionKey}: ${processed} events`);
 * }
 * await sql.end();
 * ```
 */
export async function runProjectionPartitions(
  // deno-lint-ignore no-explicit-any -- any client type map, as ProjectionProcessor accepts
  sql: Sql<any>,
  store: PostgresStore,
  projection: Projection,
  totalPartitions: number,
  options?: PartitionsOptions,
): Promise<WorkerOutcome[]> {
  validateProjection("projection", projection);
  positiveInteger("totalPartitions", totalPartitions);
  const checked = checkRunOptions("options", options, [
    "signal",
    "mode",
    "config",
    "progressIntervalMs",
  ]);
  const { signal, mode } = checked;
  const interval = progressInterval(
    "options.progressIntervalMs",
    checked.options.progressIntervalMs,
  );
  const config = checked.options.config ?? {};
  for (const field of ["partitionKey", "totalPartitions"] as const) {
    const value = (config as ProcessorConfig)[field];
    if (value !== undefined) {
      throw new ValidationError(
        `options.config.${field}`,
        "undefined (runProjectionPartitions sets it for each worker)",
        show(value),
      );
    }
  }
  // Constructing every processor first validates the configuration before
  // any worker starts.
  const workers: Worker[] = [];
  for (let partitionKey = 0; partitionKey < totalPartitions; partitionKey++) {
    const processor = reportedProcessor(sql, store, projection, {
      ...config,
      partitionKey,
      totalPartitions,
    }, interval);
    workers.push({
      label: `${projection.name}[${partitionKey}/${totalPartitions}]`,
      place: { projection: projection.name, partitionKey, totalPartitions },
      logger: config.logger,
      run: (workerSignal) => processor.run(runOptions(workerSignal, mode)),
    });
  }
  return await superviseWorkers(workers, signal);
}
