/**
 * Several projections, or several partitions of them, in one process.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import {
  DEFAULT_SEGMENTS,
  type ProcessorConfig,
  type Projection,
  type RunMode,
} from "../projection/mod.ts";
import { checkRunOptions } from "../projection/run.ts";
import { progressInterval, reportedProcessor } from "./report.ts";
import { runOptions, superviseWorkers, type Worker, type WorkerOutcome } from "./supervise.ts";
import { validateProjection } from "./validate.ts";

/**
 * One worker of {@linkcode runMultipleProjections}: a projection and the
 * processor configuration to run it with (its own batch size, logger,
 * partition...).
 *
 * @example A slow projection in small batches, on partition 1 of 2
 * ```ts
 * import type { ProjectionEntry } from "@getpup/pupsourcing/runner";
 *
 * const entry: ProjectionEntry = {
 *   projection: { name: "mailer", handle() {} },
 *   config: { batchSize: 10, partitionKey: 1, totalPartitions: 2 },
 * };
 * ```
 */
export interface ProjectionEntry {
  /** The projection to run. */
  projection: Projection;
  /** Its processor's configuration; default: the processor's defaults. */
  config?: ProcessorConfig;
}

/**
 * Options of {@linkcode runMultipleProjections}.
 *
 * @example Run every projection until it has caught up
 * ```ts
 * import type { MultipleOptions } from "@getpup/pupsourcing/runner";
 *
 * const options: MultipleOptions = { mode: "until_caught_up" };
 * ```
 */
export interface MultipleOptions {
  /** Stops every worker when it aborts; the run then resolves. */
  signal?: AbortSignal;
  /**
   * `"continuous"` (default) runs until `signal` aborts;
   * `"until_caught_up"` returns once every worker has caught up.
   */
  mode?: RunMode;
  /**
   * With a logger in a worker's configuration, each worker logs where it
   * starts and its segments, then every this many milliseconds while it
   * has work, a progress line (events processed, rate, lag); default
   * 10 000, `Infinity` for none.
   */
  progressIntervalMs?: number;
}

/**
 * Runs several projections at once in this process, one processor per
 * entry. An entry may also be one partition of a projection (set
 * `partitionKey` and `totalPartitions` in its config), so one process can
 * run, say, one worker of a cheap projection and four of a slow one.
 *
 * The promise settles only after every worker has stopped:
 *
 * - it resolves when `options.signal` aborts (or, in `"until_caught_up"`
 *   mode, when every worker has caught up), to one {@linkcode WorkerOutcome}
 *   per entry, in the entries' order: each says `"caught_up"` or
 *   `"aborted"`, with its counts;
 * - it rejects when a worker fails, with that worker's error (usually a
 *   `ProjectionError`); the other workers are stopped first. Transient
 *   database errors are retried inside each worker and stop nothing
 *   (see `retryTransientErrors`).
 *
 * Give `sql`'s pool at least one connection per entry, or workers wait
 * for each other. (The wake-up `LISTEN` has its own connection, outside
 * the pool.)
 *
 * @throws {ValidationError} before anything starts: when the list is
 * empty, an entry's projection is invalid (no name, no `handle`, an empty
 * scope list), the options are not an object or hold an unknown key, the
 * signal is not an `AbortSignal`, the mode is unknown, two entries are
 * the same partition of the same projection (same name and partition
 * key), entries of one projection disagree on `totalPartitions` or
 * `segments`, or a processor configuration is invalid.
 * @throws {DatabaseUnavailableError} in `"until_caught_up"` mode, when a
 * worker could not reach the database for its `catchUpTimeout`.
 *
 * @example Three read models, each with its own batch size
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { runMultipleProjections } from "@getpup/pupsourcing/runner";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore();
 * const controller = new AbortController();
 *
 * await runMultipleProjections(sql, store, [
 *   { projection: userCounter, config: { batchSize: 1000 } },
 *   { projection: revenue },
 *   { projection: activityLog, config: { batchSize: 50 } },
 * ], { signal: controller.signal });
 * ```
 */
export async function runMultipleProjections(
  // deno-lint-ignore no-explicit-any -- any client type map, as ProjectionProcessor accepts
  sql: Sql<any>,
  store: PostgresStore,
  entries: readonly ProjectionEntry[],
  options?: MultipleOptions,
): Promise<WorkerOutcome[]> {
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new ValidationError(
      "projections",
      "a non-empty array of { projection, config? } entries",
      show(entries),
    );
  }
  const checked = checkRunOptions("options", options, ["signal", "mode", "progressIntervalMs"]);
  const { signal, mode } = checked;
  const interval = progressInterval(
    "options.progressIntervalMs",
    checked.options.progressIntervalMs,
  );
  const seen = new Map<
    string,
    { index: number; totalPartitions: number; segments: number; kind: "static" | "group" }
  >();
  const keys = new Set<string>();
  const workers: Worker[] = [];
  entries.forEach((entry, index) => {
    const field = `projections[${index}]`;
    if (typeof entry !== "object" || entry === null) {
      throw new ValidationError(field, "a { projection, config? } entry", show(entry));
    }
    const projection = validateProjection(`${field}.projection`, entry.projection);
    const config = entry.config ?? {};
    // The processor validates the configuration when it is constructed.
    const processor = reportedProcessor(sql, store, projection, config, interval);
    const partitionKey = config.partitionKey ?? 0;
    const totalPartitions = config.totalPartitions ?? 1;
    const segments = config.segments ?? DEFAULT_SEGMENTS;
    const memberId = processor.config.group?.memberId;
    const key = `${projection.name}\0${memberId === undefined ? partitionKey : `m:${memberId}`}`;
    if (keys.has(key)) {
      throw new ValidationError(
        memberId === undefined ? `${field}.config.partitionKey` : `${field}.config.group.memberId`,
        `a ${memberId === undefined ? "partition" : "member"} of projection "${projection.name}" ` +
          `that no other entry runs`,
        memberId === undefined
          ? `partition ${partitionKey}, which an earlier entry already runs`
          : `member "${memberId}", which an earlier entry already runs`,
      );
    }
    keys.add(key);
    const kind = memberId === undefined ? "static" : "group";
    const first = seen.get(projection.name);
    if (first === undefined) {
      seen.set(projection.name, { index, totalPartitions, segments, kind });
    } else {
      if (first.kind !== kind) {
        throw new ValidationError(
          `${field}.config`,
          `${first.kind} mode, as in projections[${first.index}] (same projection ` +
            `"${projection.name}"): a projection runs in one mode`,
          `${kind} mode`,
        );
      }
      for (
        const [name, value] of [["totalPartitions", totalPartitions], [
          "segments",
          segments,
        ]] as const
      ) {
        if (first[name] !== value) {
          throw new ValidationError(
            `${field}.config.${name}`,
            `${
              first[name]
            }, as in projections[${first.index}] (same projection "${projection.name}")`,
            show(value),
          );
        }
      }
    }
    workers.push({
      label: memberId !== undefined
        ? `${projection.name}[${memberId}]`
        : totalPartitions === 1
        ? projection.name
        : `${projection.name}[${partitionKey}/${totalPartitions}]`,
      place: memberId === undefined
        ? { projection: projection.name, partitionKey, totalPartitions }
        : { projection: projection.name, partitionKey, totalPartitions, memberId },
      logger: config.logger,
      run: (workerSignal) => processor.run(runOptions(workerSignal, mode)),
    });
  });
  return await superviseWorkers(workers, signal);
}
