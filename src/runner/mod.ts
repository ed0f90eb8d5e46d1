/**
 * Orchestration of projection processors, and helpers for running them as
 * command-line workers.
 *
 * - {@linkcode runProjectionPartitions}: every partition of one projection
 *   in this process (a worker pool).
 * - {@linkcode runMultipleProjections}: several projections (or partitions
 *   of them) at once.
 * - {@linkcode runGroupMembers}: n members of a projection's consumer
 *   group in this process.
 * - {@linkcode workerConfigFromArgs}: group mode (`--group`,
 *   `PUPSOURCING_GROUP=1`) or a static partition, from the command line.
 * - {@linkcode partitionConfigFromArgs}: this process's partition from
 *   `--partition-key`/`--total-partitions` or `PARTITION_KEY`/
 *   `TOTAL_PARTITIONS`, to run one partition per process.
 *
 * Both runners settle only after every worker has stopped, so closing the
 * connection pool right after them is safe. They resolve when the caller's
 * signal aborts (or, in `"until_caught_up"` mode, when every worker has
 * caught up), to one {@linkcode WorkerOutcome} per worker, and reject with the first worker failure after stopping the
 * other workers. A transient database error (a lost connection, a
 * restart, a deadlock) is no failure: each processor retries it on its own
 * unless its config sets `retryTransientErrors: false`. Bad input is refused with a `ValidationError` before any
 * worker starts.
 *
 * @example One partition per process, stopped cleanly by SIGINT or SIGTERM
 * ```ts ignore
 * import process from "node:process";
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { ProjectionProcessor } from "@getpup/pupsourcing/projection";
 * import { partitionConfigFromArgs } from "@getpup/pupsourcing/runner";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const processor = new ProjectionProcessor(sql, new PostgresStore(), {
 *   ...partitionConfigFromArgs(),
 * });
 * const controller = new AbortController();
 * for (const signal of ["SIGINT", "SIGTERM"] as const) {
 *   process.once(signal, () => controller.abort());
 * }
 * await processor.run(myProjection, { signal: controller.signal });
 * await sql.end();
 * ```
 *
 * @example All partitions in one process
 * ```ts ignore
 * import { runProjectionPartitions } from "@getpup/pupsourcing/runner";
 *
 * await runProjectionPartitions(sql, store, myProjection, 4, { signal: controller.signal });
 * ```
 *
 * @module
 */

export { type PartitionsOptions, runProjectionPartitions } from "./partitions.ts";
export { type MultipleOptions, type ProjectionEntry, runMultipleProjections } from "./multiple.ts";
export type { WorkerOutcome } from "./supervise.ts";
export {
  type GroupConfig,
  type PartitionConfig,
  partitionConfigFromArgs,
  workerConfigFromArgs,
} from "./cli.ts";
export { type GroupMembersOptions, runGroupMembers } from "./group.ts";
