/**
 * One batch: one transaction that locks the worker's checkpoint rows,
 * reads the batch, runs the handler on each event and moves the
 * checkpoints, all or nothing; and, when a handler fails, the run again
 * up to the failing event that keeps what came before it.
 *
 * @module
 */

import type { Sql } from "postgres";
import { compareCursors, cursorOf, maxCursor } from "../es/cursor.ts";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { ProjectionError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import { beginGuarded, isConnectionLoss, missingTable } from "../postgres/internal.ts";
import {
  advanceCheckpoints,
  type BatchStatements,
  lockAndRead,
  segmentCountMismatch,
} from "./checkpoints.ts";
import type { Failures } from "./failures.ts";
import { PartitioningModeError } from "./mode_conflict.ts";
import { startHandler } from "./handler.ts";
import { aggregateKey, errorText, openParkedAggregates, recordParked } from "./parked.ts";
import { type ResolvedPolicy, retryDelay } from "./policy.ts";
import type { Projection } from "./projection.ts";
import type { Target } from "./target.ts";
import { isPolicyFailure, isSchemaError } from "./handler_errors.ts";

/** What a batch did. */
export interface BatchOutcome {
  /** The run was aborted: the batch was rolled back. */
  aborted: boolean;
  /** Events handled and committed. */
  processed: number;
  /** More events are probably waiting: the read hit the batch size, or stopped at a failure. */
  full: boolean;
  /** Some checkpoint moved. */
  advanced: boolean;
  /** Handler failures to be retried later (their segment waits). */
  retried: number;
  /** Events recorded as skipped. */
  skipped: number;
  /** Events parked: failed, or held behind a parked event of their aggregate. */
  parked: number;
}

/** How a worker runs its batches. */
export interface BatchOptions {
  batchSize: number;
  signal: AbortSignal | undefined;
  logger: Logger | undefined;
  policy: ResolvedPolicy;
  failures: Failures;
  /** The run's batch statements (see `BatchStatements`). */
  statements: BatchStatements;
}

/** Thrown inside the transaction to roll it back on abort. */
class Aborted extends Error {}

/** A batch handler failed: the batch runs again one event at a time, to find the event. */
class BatchHandlerFailed extends Error {}

/** A handler failure that is not a transient database error: the policy decides. */
class HandlerFailed extends Error {
  constructor(readonly error: ProjectionError) {
    super(error.message);
  }
}

/**
 * Where a run again stops: at `event`, whose handler is not called; the
 * events before it commit, and `skip` and `park` record it, moving the
 * checkpoint past it.
 */
interface Cut {
  event: PersistedEvent;
  action: "retry" | "stop" | "skip" | "park";
  attempts: number;
  error: ProjectionError;
}

/** What one transaction of a batch committed. */
interface Committed {
  locked: number;
  handled: PersistedEvent[];
  full: boolean;
  checkpoint: Cursor | undefined;
  skipped: number;
  parked: number;
}

const IDLE: BatchOutcome = Object.freeze({
  aborted: false,
  processed: 0,
  full: false,
  advanced: false,
  retried: 0,
  skipped: 0,
  parked: 0,
});

/**
 * Runs one batch in its own transaction (READ COMMITTED: each statement
 * sees the latest commits, and so the latest horizon): lock, read,
 * handle, advance. Segments waiting out a retry's backoff are left out.
 *
 * A handler failure rolls the transaction back, and the batch runs again
 * up to the failing event, which is not handled: the events before it
 * commit with the checkpoint (one transaction more, and only on failure;
 * a savepoint per event would cost two round trips on every event). Then
 * the error policy applies: a retry holds the event's segment back for
 * the backoff; `stop` rejects with the {@linkcode ProjectionError};
 * `skip` and `park` record the event in the parked-events table in the
 * transaction that moves the checkpoint past it. With `park` (and
 * `park: "aggregate"`), the events of an aggregate with a parked event
 * are parked behind it instead of handled.
 *
 * An abort is honoured between events: a handler that is running keeps
 * its transaction until it returns (abandoning it would let its later
 * queries run outside any transaction), then the batch is rolled back.
 *
 * When the connection is lost mid-batch, the rejection (the raw
 * connection error, or a `ProjectionError` whose cause it is) comes only
 * after a handler still running has returned, and nothing more is sent on
 * the dead transaction: the caller may run the batch again at once (see
 * `beginGuarded` in src/postgres/driver.ts). It is no handler failure:
 * the policy never sees it.
 */
export async function runBatch(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  target: Target,
  projection: Projection,
  options: BatchOptions,
): Promise<BatchOutcome> {
  const { failures, policy, logger } = options;
  const owned = failures.ready(target.owned);
  if (owned.length === 0) return IDLE;
  const share = owned === target.owned ? target : { ...target, owned };
  let cut: Cut | undefined;
  let oneByOne = projection.handleBatch === undefined;
  let done: Committed;
  for (;;) {
    try {
      done = await transaction(sql, share, projection, options, cut, oneByOne);
      break;
    } catch (error) {
      if (error instanceof BatchHandlerFailed) {
        oneByOne = true;
        continue;
      }
      if (error instanceof Aborted) {
        // Stopping does not hide a failure that stops the run anyway.
        if (cut?.action === "stop") throw cut.error;
        return { ...IDLE, aborted: true };
      }
      if (!(error instanceof HandlerFailed)) throw missingTable(error, target.tables);
      const { event } = error.error;
      const attempts = failures.fail(event);
      const action = attempts <= policy.retries ? "retry" : policy.then;
      cut = { event, action, attempts, error: error.error };
    }
  }
  failures.settle(done.handled);
  if (cut && cut.action !== "retry" && cut.action !== "stop") failures.settle([cut.event]);
  if (cut?.action === "retry") failures.wait(cut.event, retryDelay(policy, cut.attempts));
  const processed = done.handled.length;
  if (logger && (processed > 0 || done.checkpoint || cut)) {
    const fields = {
      projection: projection.name,
      processed,
      skippedSegments: target.owned.length - done.locked,
      checkpoint: done.checkpoint,
    };
    if (processed > 0) logger.info("events processed", fields);
    else logger.debug("batch processed", fields);
    if (cut) logFailure(logger, projection.name, cut, policy);
  }
  if (cut?.action === "stop") throw cut.error;
  return {
    aborted: false,
    processed,
    full: done.full,
    advanced: done.checkpoint !== undefined,
    retried: cut?.action === "retry" ? 1 : 0,
    skipped: done.skipped,
    parked: done.parked,
  };
}

/** One transaction: lock, read, handle up to `cut` (if any), advance. */
async function transaction(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  target: Target,
  projection: Projection,
  { batchSize, signal, logger, policy, statements }: BatchOptions,
  cut: Cut | undefined,
  oneByOne: boolean,
): Promise<Committed> {
  const done: Committed = {
    locked: 0,
    handled: [],
    full: false,
    checkpoint: undefined,
    skipped: 0,
    parked: 0,
  };
  // The checkpoint update goes out with the COMMIT, in one round trip: the
  // body returns without waiting for it. A failed update aborts the
  // transaction, and the COMMIT then rolls back without an error of its
  // own, so its outcome is awaited once the transaction is over.
  let advanced: Promise<void> | undefined;
  await beginGuarded(sql, async (tx, track) => {
    // Lock this worker's segments (those behind the tip that no other
    // processor holds) and read their share of the log after their cursors.
    const view = await lockAndRead(tx, target, batchSize, statements);
    done.locked = view.rows.length;
    if (done.locked === 0) return;
    const mismatch = view.rows.find((row) => row.segmentCount !== target.segments);
    if (mismatch) throw segmentCountMismatch(target.name, mismatch.segmentCount, target.segments);
    const leased = target.member === undefined
      ? view.rows.find((row) => row.leasedBy !== undefined)
      : undefined;
    if (leased) {
      throw new PartitioningModeError(target.name, "static", leased.segment, leased.leasedBy!);
    }
    let events = view.page;
    done.full = events.length === batchSize;

    // Starts the handler on `first` (or `call`, a batch handler): a
    // promise to await if it returned one. A handler's failure is the
    // policy's, unless a transient database error (retried) or the
    // database refusing the handler's SQL itself (the run stops: every
    // event would fail alike, and parking them all would empty the log
    // into the parked table).
    const { handlerTimeoutMs } = policy;
    const policyFailure = (error: unknown) =>
      isPolicyFailure(error) ? new HandlerFailed(error) : error;
    const start = (first: PersistedEvent, call?: () => void | Promise<void>) => {
      let work: Promise<void> | undefined;
      try {
        work = startHandler(projection, first, tx, handlerTimeoutMs, logger, call);
      } catch (error) {
        throw policyFailure(error);
      }
      return work && track(work).catch((error) => {
        throw policyFailure(error);
      });
    };

    // A run again stops at the failing event (and takes it, to record it).
    let last: PersistedEvent | undefined;
    let recordCut = false;
    if (cut) {
      const at = cursorOf(cut.event);
      const stop = events.findIndex((event) => compareCursors(cursorOf(event), at) >= 0);
      if (stop >= 0) {
        recordCut = events[stop].globalPosition === cut.event.globalPosition &&
          (cut.action === "skip" || cut.action === "park");
        events = events.slice(0, stop);
        done.full = true;
      }
    }

    // Aggregates with a parked event: their later events wait behind it.
    // The batch's statement said whether the projection has any (nearly
    // always none): only then are this batch's aggregates looked up.
    const held = target.holdsParked && view.parked && events.length > 0
      ? await openParkedAggregates(tx, target, events)
      : undefined;

    // Handle each event, in order: one by one, or (a batch handler) the
    // events not held, in one call. A handler that returns without a
    // promise is not awaited: the next event follows at once.
    const batch: PersistedEvent[] = [];
    for (const event of events) {
      if (signal?.aborted) throw new Aborted();
      last = event;
      if (held?.has(aggregateKey(event))) {
        await recordParked(tx, target, event, { status: "parked", reason: "held", attempts: 0 });
        done.parked++;
      } else if (!oneByOne) batch.push(event);
      else {
        const work = start(event);
        if (work) await work;
        done.handled.push(event);
      }
    }
    if (batch.length > 0) {
      try {
        await start(batch[0], () => projection.handleBatch!(batch, tx));
      } catch (error) {
        // Run again one event at a time, where the policy (or a schema
        // error's stop) meets the very event that fails.
        throw error instanceof HandlerFailed ||
            (error instanceof ProjectionError && isSchemaError(error.cause))
          ? new BatchHandlerFailed()
          : error;
      }
      done.handled.push(...batch);
    }
    if (signal?.aborted) throw new Aborted();
    if (cut && recordCut) {
      const status = cut.action === "park" ? "parked" : "skipped";
      const error = errorText(cut.error.cause);
      await recordParked(tx, target, cut.event, {
        status,
        reason: "failed",
        error,
        attempts: cut.attempts,
      });
      if (status === "parked") done.parked++;
      else done.skipped++;
      last = cut.event;
    }

    // Advance. A full batch has seen every event of these segments up to
    // its last one; a short batch has seen everything below the horizon,
    // so the segments can move on to the tip even past events out of scope.
    let next = last ? cursorOf(last) : undefined;
    if (!done.full && view.tip) next = next ? maxCursor(next, view.tip) : view.tip;
    if (next && view.rows.some((row) => compareCursors(row.cursor, next) < 0)) {
      advanced = advanceCheckpoints(tx, target, view.rows.map((row) => row.segment), next);
      // When the transaction fails as a whole, that failure is the one reported.
      advanced.catch(() => {});
      done.checkpoint = next;
    }
  }, (error) => isConnectionLoss(error instanceof ProjectionError ? error.cause : error));
  await advanced;
  return done;
}

function logFailure(logger: Logger, projection: string, cut: Cut, policy: ResolvedPolicy): void {
  const { event, action, attempts } = cut;
  const fields = {
    projection,
    position: event.globalPosition,
    aggregateType: event.aggregateType,
    aggregateId: event.aggregateId,
    eventType: event.eventType,
    attempts,
    error: cut.error.cause,
  };
  if (action === "retry") {
    logger.error("projection handler failed, retrying", {
      ...fields,
      delayMs: retryDelay(policy, attempts),
    });
  } else if (action === "skip") logger.error("projection event skipped", fields);
  else if (action === "park") logger.error("projection event parked", fields);
}
