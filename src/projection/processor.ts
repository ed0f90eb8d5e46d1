/**
 * The projection processor: runs one worker of one projection.
 *
 * @module
 */

import type { Sql } from "postgres";
import { type Cursor, START } from "../es/event.ts";
import { PostgresStore } from "../postgres/mod.ts";
import { requireClient } from "../postgres/internal.ts";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/show.ts";
import { runBatch } from "./batch.ts";
import { observeBatch } from "../telemetry/batch.ts";
import {
  BatchStatements,
  ensureCheckpoints,
  furthestCheckpoint,
  type Probe,
  probeCheckpoints,
} from "./checkpoints.ts";
import { type ProcessorConfig, resolveConfig, type ResolvedConfig } from "./config.ts";
import { compareCursors } from "../es/cursor.ts";
import { Failures } from "./failures.ts";
import { GroupMember } from "./group.ts";
import { liveGroupLease } from "./leases.ts";
import { PartitioningModeError } from "./mode_conflict.ts";
import { type ResolvedPolicy, resolvePolicy } from "./policy.ts";
import { type Projection, validateProjection } from "./projection.ts";
import { checkRunOptions, type RunMode, type RunOptions, type RunOutcome } from "./run.ts";
import { ownedSegments } from "./segments.ts";
import type { Target } from "./target.ts";
import { Backoff } from "./transient.ts";
import { Alarm, listenForWakeUps, type WakeUpListener } from "./wakeup.ts";

export type { ProcessorConfig } from "./config.ts";

/** Why a run ended, for the log. */
type StopReason = "aborted" | "caught up" | "failed";

/** What a run has committed so far. */
interface Tally {
  processed: number;
  batches: number;
  retried: number;
  skipped: number;
  parked: number;
}

/**
 * Runs projections: one worker, owning the segments `s` with
 * `s % totalPartitions === partitionKey`, reads its share of the log in
 * commit-safe order and hands each event to the projection inside the
 * transaction that moves the segments' checkpoints. Read models written
 * through that transaction are updated exactly once, whatever crashes.
 *
 * - Each batch is one transaction: lock the worker's checkpoint rows
 *   (`FOR UPDATE SKIP LOCKED`) and read up to `batchSize` events after
 *   them in one statement, call `handle` on each in order, move the
 *   checkpoints forward and commit (one round trip).
 *   Two processors of the same partition never apply an event twice: a
 *   segment is locked by one of them at a time.
 * - Checkpoints belong to segments, so changing `totalPartitions` (1, 4, 3,
 *   1, ...) never skips or repeats an event. The segment count is fixed
 *   per projection.
 * - Idle polls read without locking or writing; the interval doubles up to
 *   `maxPollInterval` while idle, a NOTIFY from an append wakes it at once
 *   (straight into a batch, which locks nothing when nothing is readable),
 *   and it stays short while committed events wait for an older
 *   transaction to end.
 * - A database that goes away (a restart, a failover, a dropped
 *   connection) is waited for, with backoff, at startup and between
 *   batches; see `retryTransientErrors`.
 *
 * One processor may run several projections at once (one `run` each).
 *
 * @example Run a projection until Ctrl-C
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing/postgres";
 * import { ProjectionProcessor } from "@getpup/pupsourcing/projection";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const processor = new ProjectionProcessor(sql, new PostgresStore(), { logger: console });
 * const controller = new AbortController();
 * Deno.addSignalListener("SIGINT", () => controller.abort());
 * await processor.run({
 *   name: "user_emails",
 *   aggregateTypes: ["User"],
 *   async handle(event, tx) {
 *     const { email } = JSON.parse(new TextDecoder().decode(event.payload));
 *     await tx`insert into user_emails (user_id, email) values (${event.aggregateId}, ${email})
 *              on conflict (user_id) do update set email = excluded.email`;
 *   },
 * }, { signal: controller.signal });
 * await sql.end();
 * ```
 */
export class ProjectionProcessor {
  /** The validated configuration, defaults filled in. */
  readonly config: Readonly<ResolvedConfig>;
  /**
   * The segments this worker owns, ascending; in group mode none: a group
   * member's segments change as members come and go (see
   * `segmentOwnership`).
   */
  readonly segments: readonly number[];
  // deno-lint-ignore no-explicit-any -- any client configuration
  readonly #sql: Sql<any>;
  readonly #store: PostgresStore;

  /**
   * Validates the configuration; nothing touches the database before `run`.
   *
   * @throws {ValidationError} on a bad option: a batch size that is not a
   * positive integer, a partition key outside `0..totalPartitions-1`, a
   * partition count below 1 or above `segments`, a segment count outside
   * 1..1024, a poll interval that is not a positive number of milliseconds,
   * or `wakeUp: true` on a store without a NOTIFY channel.
   *
   * @example Worker 0 of 2
   * ```ts ignore
   * const processor = new ProjectionProcessor(sql, store, { partitionKey: 0, totalPartitions: 2 });
   * ```
   */
  constructor(
    // deno-lint-ignore no-explicit-any -- accepts clients configured with any custom type map
    sql: Sql<any>,
    store: PostgresStore,
    config: ProcessorConfig = {},
  ) {
    requireClient("sql", sql, "each batch runs in a transaction of its own");
    if (!(store instanceof PostgresStore)) {
      throw new ValidationError("store", "a PostgresStore", show(store));
    }
    this.config = Object.freeze(resolveConfig(config, store.notifyChannel));
    const { partitionKey, totalPartitions, segments, group } = this.config;
    this.segments = Object.freeze(
      group ? [] : ownedSegments(partitionKey, totalPartitions, segments),
    );
    this.#sql = sql;
    this.#store = store;
  }

  /**
   * Runs `projection` until `options.signal` aborts, or, in
   * `"until_caught_up"` mode, until it has processed everything below the
   * safe horizon when it started. Resolves to a {@linkcode RunOutcome}:
   * `status` says which of the two ended it (`"aborted"` also when the
   * signal stopped it while it waited for the database), with the events,
   * batches and retries of this run. An aborted batch is rolled back.
   *
   * Transient database errors are logged (`"projection processor database
   * error, retrying"`, with the error's `code` and `message`, the
   * `attempt`, the `delayMs` before the next one and the `elapsedMs` since
   * the database was last reached) and retried with backoff; continuous
   * runs retry for as long as it takes, `"until_caught_up"` runs give up
   * after `catchUpTimeout`.
   *
   * @throws {ValidationError} on a bad projection or options (not an
   * object, an unknown key, a `signal` that is not an `AbortSignal`, an
   * unknown mode), or a segment count other than the projection's first
   * run used.
   * @throws {TransactionIdRegressionError} when a checkpoint is ahead of
   * the database's transaction ids (restored into a new cluster).
   * @throws {ProjectionError} when the handler throws: its batch is rolled
   * back, and the event is delivered again on the next run.
   * @throws {DatabaseUnavailableError} in `"until_caught_up"` mode, when
   * the database stayed unreachable for `catchUpTimeout`.
   * @throws the database's error when it is not transient (see
   * `retryTransientErrors`), or any database error when that option is
   * `false`. Transient ones (a lost connection, a refused connection, a
   * host name that does not resolve, a restart, `40001`, `40P01`, also
   * when a handler's transaction dies under it) are retried: the batch is
   * rolled back or found committed, so nothing is applied twice.
   *
   * @example Catch up in a test
   * ```ts ignore
   * const outcome = await processor.run(projection, { mode: "until_caught_up" });
   * console.log(outcome.status, outcome.processed); // caught_up 42
   * ```
   */
  async run(projection: Projection, options?: RunOptions): Promise<RunOutcome> {
    validateProjection(projection);
    const policy = resolvePolicy("projection.onError", projection.onError, this.config.onError);
    const { signal, mode = "continuous" } = checkRunOptions("options", options, ["signal", "mode"]);
    const { logger, partitionKey, totalPartitions, batchSize, segments, group } = this.config;
    const target: Target = {
      tables: this.#store.tables,
      name: projection.name,
      segments,
      // A group member's probe covers every segment: it may get any of them.
      owned: group ? Array.from({ length: segments }, (_, s) => s) : this.segments,
      member: group ? { id: group.memberId, leaseMs: group.leaseMs } : undefined,
      aggregateTypes: projection.aggregateTypes,
      eventTypes: projection.eventTypes,
      holdsParked: policy.then === "park" && policy.keepOrder,
    };
    const member = group
      ? new GroupMember({ tables: target.tables, name: target.name }, segments, group, logger)
      : undefined;
    logger?.info("projection processor starting", {
      projection: projection.name,
      ...(group ? { memberId: group.memberId } : { partitionKey, totalPartitions }),
      batchSize,
      segments,
    });
    let reason: StopReason = "failed";
    const alarm = new Alarm();
    let listener: WakeUpListener | undefined;
    const backoff = new Backoff({
      enabled: this.config.retryTransientErrors,
      pollInterval: this.config.pollInterval,
      maxPollInterval: this.config.maxPollInterval,
      giveUpAfter: mode === "until_caught_up" ? this.config.catchUpTimeout : undefined,
      logger,
      projection: projection.name,
    });
    const tally: Tally = { processed: 0, batches: 0, retried: 0, skipped: 0, parked: 0 };
    try {
      if (await this.#start(target, backoff, signal) === "aborted") {
        reason = "aborted";
      } else {
        // A run that stops once caught up never sleeps long: no LISTEN needed.
        const channel = this.#store.notifyChannel;
        if (mode === "continuous" && this.config.wakeUp && channel !== undefined) {
          listener = listenForWakeUps(
            this.#sql,
            channel,
            projection.name,
            projection.aggregateTypes,
            alarm,
            logger,
          );
        }
        reason = await this.#loop(
          projection,
          policy,
          target,
          member,
          mode,
          alarm,
          backoff,
          tally,
          signal,
        );
      }
    } finally {
      await listener?.stop();
      await member?.leave(this.#sql);
      logger?.info("projection processor stopped", { projection: projection.name, reason });
    }
    return {
      status: reason === "caught up" ? "caught_up" : "aborted",
      processed: tally.processed,
      batches: tally.batches,
      retries: backoff.retries,
      retried: tally.retried,
      skipped: tally.skipped,
      parked: tally.parked,
    };
  }

  /**
   * Creates the checkpoints and checks them against the cluster, waiting
   * out a database that is away (a processor started while the server
   * restarts waits for it, and only a non-transient error stops it).
   */
  async #start(
    target: Target,
    backoff: Backoff,
    signal: AbortSignal | undefined,
  ): Promise<"started" | "aborted"> {
    for (;;) {
      try {
        // Checked before the checkpoints are made: a moved log is refused
        // with nothing written.
        const furthest = await furthestCheckpoint(this.#sql, target);
        await this.#store.assertCursorInCluster(this.#sql, furthest ?? START);
        await ensureCheckpoints(this.#sql, target);
        if (target.member === undefined) {
          const leased = await liveGroupLease(this.#sql, target, target.owned);
          if (leased) {
            throw new PartitioningModeError(target.name, "static", leased.segment, leased.owner);
          }
        }
        backoff.reset();
        return "started";
      } catch (error) {
        if (await backoff.recover(error, signal) === "aborted") return "aborted";
      }
    }
  }

  async #loop(
    projection: Projection,
    policy: ResolvedPolicy,
    target: Target,
    member: GroupMember | undefined,
    mode: RunMode,
    alarm: Alarm,
    backoff: Backoff,
    tally: Tally,
    signal: AbortSignal | undefined,
  ): Promise<Exclude<StopReason, "failed">> {
    const { batchSize, pollInterval, maxPollInterval, logger } = this.config;
    let goal: Cursor | undefined;
    let idlePolls = 0;
    let woken = false;
    const failures = new Failures(target.segments);
    const statements = new BatchStatements();
    for (;;) {
      if (signal?.aborted) return "aborted";
      // After a wake-up, straight to a batch: a NOTIFY says an event was
      // committed, and the batch's statement finds it (with the regression
      // guard) in the round trip a probe would have taken before it.
      const direct = woken;
      woken = false;
      let probe: Probe | undefined;
      let processed = 0;
      let advanced = false;
      // Every statement here stands alone or in a batch transaction that
      // is over when it fails: after a transient error the poll starts
      // again from the checkpoints, re-read (and re-locked) as they are.
      try {
        // A group member beats between batches: renews, releases, takes.
        if (member && member.dueIn() === 0) await member.beat(this.#sql);
        // A group member works on the segments it holds; the rest are probed
        // only to know when the whole group has caught up.
        const share = member ? { ...target, owned: member.owned } : target;
        let behind = direct;
        if (!direct) {
          probe = await probeCheckpoints(this.#sql, target);
          backoff.reset();
          const tip = probe.tip;
          if (mode === "until_caught_up") {
            // Everything below the horizon at the first poll, and nothing more.
            goal ??= tip ?? START;
            const reached = goal;
            if (probe.rows.every((row) => compareCursors(row.cursor, reached) >= 0)) {
              return "caught up";
            }
          }
          behind = probe.rows.some((row) =>
            tip && compareCursors(row.cursor, tip) < 0 &&
            (!member || share.owned.includes(row.segment))
          );
        }
        if (behind) {
          for (;;) {
            // Telemetry: a span and metrics per batch (src/telemetry/batch.ts).
            const outcome = await observeBatch(
              projection,
              (observed) =>
                runBatch(this.#sql, share, observed, {
                  batchSize,
                  signal,
                  logger,
                  policy,
                  failures,
                  statements,
                }),
            );
            if (outcome.aborted) return "aborted";
            backoff.reset();
            // Parked and skipped events are progress too: look again at once.
            processed += outcome.processed + outcome.parked + outcome.skipped;
            tally.processed += outcome.processed;
            if (outcome.processed > 0) tally.batches++;
            tally.retried += outcome.retried;
            tally.skipped += outcome.skipped;
            tally.parked += outcome.parked;
            advanced ||= outcome.advanced;
            if (!outcome.full || signal?.aborted || member?.dueIn() === 0) break;
          }
        }
      } catch (error) {
        if (await backoff.recover(error, signal) === "aborted") return "aborted";
        continue;
      }
      // After handling events, look again at once: more may have come
      // meanwhile. Checkpoints that only moved past events out of scope
      // are no reason to hurry: on a busy log that would spin.
      if (processed > 0 || (advanced && mode === "until_caught_up")) {
        idlePolls = 0;
        continue;
      }
      // A wake-up that found nothing to handle: poll now, to learn whether
      // committed events wait behind the horizon before sleeping.
      if (!probe) continue;
      // Committed events wait behind an open transaction: the horizon may
      // pass them any moment, and no NOTIFY will say so.
      if (probe.pending) idlePolls = 0;
      // A group member caught up on its own segments waits for the others'
      // to finish a catch-up run: it looks again soon rather than backing off.
      if (member && mode === "until_caught_up") idlePolls = 0;
      // A segment waiting for a retry is polled again when it is due.
      const delay = Math.min(
        pollInterval * 2 ** idlePolls,
        maxPollInterval,
        failures.nextDueIn() ?? Infinity,
        member?.dueIn() ?? Infinity,
      );
      idlePolls = Math.min(idlePolls + 1, 30);
      const awakening = await alarm.sleep(delay, signal);
      if (awakening === "aborted") return "aborted";
      woken = awakening === "woken";
    }
  }
}
