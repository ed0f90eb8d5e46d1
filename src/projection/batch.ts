/**
 * One batch: one transaction that locks the worker's checkpoint rows,
 * reads the batch, runs the handler on each event and moves the
 * checkpoints, all or nothing.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { ProjectionError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import {
  advanceCheckpoints,
  type CheckpointRow,
  lockCheckpoints,
  segmentCountMismatch,
} from "./checkpoints.ts";
import { compareCursors, cursorOf, maxCursor } from "./cursor.ts";
import type { Projection } from "./projection.ts";
import { readBatch } from "./read.ts";
import type { Target } from "./target.ts";
import { isConnectionLoss } from "./transient.ts";

/** What a batch did. */
export interface BatchOutcome {
  /** The run was aborted: the batch was rolled back. */
  aborted: boolean;
  /** Events handled and committed. */
  processed: number;
  /** The read hit the batch size: more events are probably waiting. */
  full: boolean;
  /** Some checkpoint moved. */
  advanced: boolean;
}

/** Thrown inside the transaction to roll it back on abort. */
class Aborted extends Error {}

/**
 * A promise that never settles, for a transaction body whose connection
 * is gone: settling it would make postgres.js send COMMIT or ROLLBACK down
 * a closed socket. Nothing holds on to it, so it is collected.
 */
function forever(): Promise<never> {
  return new Promise<never>(noop);
}

function noop(): void {}

/** How long a body that saw a connection error waits for the connection to close. */
const CLOSE_GRACE_MS = 1000;

/** Whether `gone` settles within {@linkcode CLOSE_GRACE_MS}. */
async function closesWithin(gone: Promise<void>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS, false));
  try {
    return await Promise.race([gone.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Statement-issuing methods of a postgres.js transaction, besides calling it. */
const QUERY_METHODS: ReadonlySet<PropertyKey> = new Set(["unsafe", "file", "savepoint"]);

/**
 * The batch's transaction as the handler sees it: once the batch has
 * failed, every statement is refused with a `CONNECTION_CLOSED` error.
 * postgres.js would otherwise send it down a closed socket (a crash out of
 * a timer), or on the connection reopened for other work, outside this
 * transaction: an event applied without its checkpoint, then again.
 */
// deno-lint-ignore no-explicit-any -- any client configuration
function guard<T extends TransactionSql<any>>(tx: T, gone: () => boolean): T {
  const check = () => {
    if (gone()) {
      throw Object.assign(
        new Error("CONNECTION_CLOSED: the batch's transaction is over, its connection was lost"),
        { code: "CONNECTION_CLOSED" },
      );
    }
  };
  return new Proxy(tx, {
    apply(target, self, args) {
      check();
      return Reflect.apply(target, self, args);
    },
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (!QUERY_METHODS.has(key) || typeof value !== "function") return value;
      return (...args: unknown[]) => {
        check();
        return Reflect.apply(value, target, args);
      };
    },
  });
}

/**
 * Runs one batch in its own transaction (READ COMMITTED: each statement
 * sees the latest commits, and so the latest horizon).
 *
 * A handler failure rolls back the handler writes of the whole batch with
 * its checkpoint and rejects with a {@linkcode ProjectionError}. An abort
 * is honoured between events: a handler that is running keeps its
 * transaction until it returns (abandoning it would let its later queries
 * run outside any transaction), then the batch is rolled back.
 *
 * When the connection is lost mid-batch, the rejection (the raw
 * connection error, or a `ProjectionError` whose cause it is) comes only
 * after a handler still running has returned, and nothing more is sent on
 * the dead transaction: the caller may run the batch again at once.
 */
export async function runBatch(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  target: Target,
  projection: Projection,
  batchSize: number,
  signal: AbortSignal | undefined,
  logger: Logger | undefined,
): Promise<BatchOutcome> {
  let locked: CheckpointRow[] = [];
  let checkpoint: Cursor | undefined;
  let processed = 0;
  let full = false;
  // Set once `sql.begin` has rejected: the body must not touch `tx` again.
  let gone = false;
  let markGone!: () => void;
  const goneSignal = new Promise<void>((resolve) => markGone = resolve);
  // The handler call in flight, to wait for before the batch is retried.
  let inFlight: Promise<void> | undefined;
  try {
    await sql.begin(async (tx) => {
      try {
        const view = await lockCheckpoints(tx, target);
        locked = view.rows;
        if (locked.length === 0) return;
        const mismatch = locked.find((row) => row.segmentCount !== target.segments);
        if (mismatch) {
          throw segmentCountMismatch(target.name, mismatch.segmentCount, target.segments);
        }

        const events = await readBatch(tx, target, locked, batchSize);
        const handlerTx = guard(tx, () => gone);
        for (const event of events) {
          if (signal?.aborted) throw new Aborted();
          inFlight = handle(projection, event, handlerTx, logger);
          await inFlight;
          if (gone) return await forever();
        }
        if (signal?.aborted) throw new Aborted();
        processed = events.length;
        full = events.length === batchSize;

        // A full batch has seen every event of these segments up to its last
        // one; a short batch has seen everything below the horizon, so the
        // segments can move on to the tip even past events out of scope.
        const last = events.at(-1);
        let next = last ? cursorOf(last) : undefined;
        if (!full && view.tip) next = next ? maxCursor(next, view.tip) : view.tip;
        if (next && locked.some((row) => compareCursors(row.cursor, next) < 0)) {
          await advanceCheckpoints(tx, target, locked.map((row) => row.segment), next);
          checkpoint = next;
        }
      } catch (error) {
        // postgres.js answers a failed transaction body with a ROLLBACK on
        // the same connection; once that connection is closed, the write
        // throws out of a timer and takes the process down. `sql.begin`
        // rejects by itself when the connection closes, so the body goes
        // quiet instead of failing.
        // An error that only looks like one (a handler's own ECONNREFUSED
        // from some other service) leaves the connection open: after a
        // grace period the body fails as usual and the batch rolls back.
        const cause = error instanceof ProjectionError ? error.cause : error;
        if (gone || (isConnectionLoss(cause) && await closesWithin(goneSignal))) {
          return await forever();
        }
        throw error;
      }
    });
  } catch (error) {
    if (error instanceof Aborted) {
      return { aborted: true, processed: 0, full: false, advanced: false };
    }
    gone = true;
    markGone();
    // A handler may still be running on the dead transaction (its
    // connection was lost while it awaited something else): the batch is
    // retried only once it has returned, never next to it.
    await inFlight?.then(noop, noop);
    throw error;
  }
  if (logger && (processed > 0 || checkpoint)) {
    const fields = {
      projection: projection.name,
      processed,
      skippedSegments: target.owned.length - locked.length,
      checkpoint,
    };
    if (processed > 0) logger.info("events processed", fields);
    else logger.debug("batch processed", fields);
  }
  return { aborted: false, processed, full, advanced: checkpoint !== undefined };
}

async function handle(
  projection: Projection,
  event: PersistedEvent,
  // deno-lint-ignore no-explicit-any -- any client configuration
  tx: TransactionSql<any>,
  logger: Logger | undefined,
): Promise<void> {
  try {
    await projection.handle(event, tx);
  } catch (cause) {
    logger?.error("projection handler error", {
      projection: projection.name,
      position: event.globalPosition,
      transactionId: event.transactionId,
      aggregateType: event.aggregateType,
      aggregateId: event.aggregateId,
      eventType: event.eventType,
      error: cause,
    });
    throw new ProjectionError(projection.name, event, cause);
  }
}
