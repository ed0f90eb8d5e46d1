/**
 * Several members of one projection's consumer group in one process.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import {
  type GroupOptions,
  type ProcessorConfig,
  type Projection,
  ProjectionProcessor,
  type RunMode,
} from "../projection/mod.ts";
import { registerMembers } from "../projection/leases.ts";
import { checkRunOptions } from "../projection/run.ts";
import { runOptions, superviseWorkers, type Worker, type WorkerOutcome } from "./supervise.ts";
import { positiveInteger, validateProjection } from "./validate.ts";

/**
 * Options of {@linkcode runGroupMembers}.
 *
 * @example Three members named after the host, with a 5 s lease
 * ```ts
 * import type { GroupMembersOptions } from "@getpup/pupsourcing/runner";
 *
 * const options: GroupMembersOptions = {
 *   memberIdPrefix: "worker-a",
 *   group: { leaseMs: 5_000 },
 *   config: { batchSize: 500 },
 * };
 * ```
 */
export interface GroupMembersOptions {
  /** Stops every member when it aborts; each releases its leases, then the run resolves. */
  signal?: AbortSignal;
  /**
   * `"continuous"` (default) runs until `signal` aborts;
   * `"until_caught_up"` returns once the whole group has caught up.
   */
  mode?: RunMode;
  /** The members' ids are `<prefix>-0`, `<prefix>-1`, ...; default: a random UUID. */
  memberIdPrefix?: string;
  /** Lease and heartbeat of every member (the runner sets `memberId`). */
  group?: Omit<GroupOptions, "memberId">;
  /**
   * The processor configuration every member shares: no `partitionKey`,
   * `totalPartitions` or `group` (the runner sets group mode itself).
   */
  config?: Omit<ProcessorConfig, "partitionKey" | "totalPartitions" | "group">;
}

/**
 * Runs `members` members of `projection`'s consumer group in this process.
 * They join the group together (so none takes more than its share at the
 * start) and share the segments with every other member of the group, in
 * this process or any other: ⌊S/N⌋ or ⌈S/N⌉ each once settled.
 *
 * The promise settles only after every member has stopped and released
 * its leases:
 *
 * - it resolves when `options.signal` aborts (or, in `"until_caught_up"`
 *   mode, when every segment has caught up), to one
 *   {@linkcode WorkerOutcome} per member, in order: `partitionKey` is the
 *   member's index, `totalPartitions` the member count, `memberId` its id;
 * - it rejects when a member fails, with that member's error; the others
 *   are stopped first.
 *
 * Give `sql`'s pool at least `members` connections.
 *
 * @throws {ValidationError} before anything starts: `members` not a
 * positive integer, an invalid projection, options or configuration
 * (partition settings, group settings out of range).
 *
 * @example Four members in one process, stopped by SIGTERM
 * ```ts ignore
 * import process from "node:process";
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { runGroupMembers } from "@getpup/pupsourcing/runner";
 *
 * const sql = postgres(process.env.DATABASE_URL!, { max: 8 });
 * const controller = new AbortController();
 * process.once("SIGTERM", () => controller.abort());
 * await runGroupMembers(sql, new PostgresStore(), orderTotals, 4, {
 *   signal: controller.signal,
 *   memberIdPrefix: process.env.HOSTNAME,
 * });
 * await sql.end();
 * ```
 */
export async function runGroupMembers(
  // deno-lint-ignore no-explicit-any -- any client type map, as ProjectionProcessor accepts
  sql: Sql<any>,
  store: PostgresStore,
  projection: Projection,
  members: number,
  options?: GroupMembersOptions,
): Promise<WorkerOutcome[]> {
  validateProjection("projection", projection);
  positiveInteger("members", members);
  const checked = checkRunOptions("options", options, [
    "signal",
    "mode",
    "memberIdPrefix",
    "group",
    "config",
  ]);
  const { signal, mode } = checked;
  const config = checked.options.config ?? {};
  for (const field of ["partitionKey", "totalPartitions", "group"] as const) {
    const value = (config as ProcessorConfig)[field];
    if (value !== undefined) {
      throw new ValidationError(
        `options.config.${field}`,
        "undefined (runGroupMembers runs group members; group settings go in options.group)",
        show(value),
      );
    }
  }
  const prefix = checked.options.memberIdPrefix ?? crypto.randomUUID();
  const group = checked.options.group ?? {};
  if (typeof group === "object" && group !== null && "memberId" in group) {
    throw new ValidationError(
      "options.group.memberId",
      "undefined (the runner names its members <memberIdPrefix>-<index>)",
      show((group as GroupOptions).memberId),
    );
  }
  // Constructing every processor first validates everything before any start.
  const processors = Array.from(
    { length: members },
    (_, index) =>
      new ProjectionProcessor(sql, store, {
        ...config,
        group: { ...group, memberId: `${prefix}-${index}` },
      }),
  );
  if (!signal?.aborted) {
    const { group: first } = processors[0].config;
    await registerMembers(
      sql,
      { tables: store.tables, name: projection.name },
      processors.map((p) => p.config.group!.memberId),
      first!.leaseMs,
    );
  }
  const workers: Worker[] = processors.map((processor, index) => {
    const memberId = processor.config.group!.memberId;
    return {
      label: `${projection.name}[${memberId}]`,
      place: {
        projection: projection.name,
        partitionKey: index,
        totalPartitions: members,
        memberId,
      },
      logger: config.logger,
      run: (workerSignal) => processor.run(projection, runOptions(workerSignal, mode)),
    };
  });
  return await superviseWorkers(workers, signal);
}
