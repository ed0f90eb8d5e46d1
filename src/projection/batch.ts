/**
 * One batch: one transaction that locks the worker's checkpoint rows,
 * reads the batch, runs the handler on each event and moves the
 * checkpoints, all or nothing.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import { compareCursors, cursorOf, maxCursor } from "../es/cursor.ts";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { ProjectionError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import { beginGuarded, missingTable, readSegments } from "../postgres/internal.ts";
import { advanceCheckpoints, lockCheckpoints, segmentCountMismatch } from "./checkpoints.ts";
import type { Projection } from "./projection.ts";
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
 * Runs one batch in its own transaction (READ COMMITTED: each statement
 * sees the latest commits, and so the latest horizon): lock, read,
 * handle, advance.
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
 * the dead transaction: the caller may run the batch again at once (see
 * `beginGuarded` in src/postgres/driver.ts).
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
  let locked = 0;
  let checkpoint: Cursor | undefined;
  let processed = 0;
  let full = false;
  try {
    await beginGuarded(sql, async (tx, track) => {
      // Lock this worker's segments (those no other processor holds).
      const view = await lockCheckpoints(tx, target);
      locked = view.rows.length;
      if (locked === 0) return;
      const mismatch = view.rows.find((row) => row.segmentCount !== target.segments);
      if (mismatch) throw segmentCountMismatch(target.name, mismatch.segmentCount, target.segments);

      // Read their share of the log after their cursors.
      const { aggregateTypes, eventTypes } = target;
      const events = await readSegments(tx, target.tables, view.rows, target.segments, batchSize, {
        aggregateTypes,
        eventTypes,
      });

      // Handle each event, in order.
      for (const event of events) {
        if (signal?.aborted) throw new Aborted();
        await track(handle(projection, event, tx, logger));
      }
      if (signal?.aborted) throw new Aborted();
      processed = events.length;
      full = events.length === batchSize;

      // Advance. A full batch has seen every event of these segments up to
      // its last one; a short batch has seen everything below the horizon,
      // so the segments can move on to the tip even past events out of scope.
      const last = events.at(-1);
      let next = last ? cursorOf(last) : undefined;
      if (!full && view.tip) next = next ? maxCursor(next, view.tip) : view.tip;
      if (next && view.rows.some((row) => compareCursors(row.cursor, next) < 0)) {
        await advanceCheckpoints(tx, target, view.rows.map((row) => row.segment), next);
        checkpoint = next;
      }
    }, (error) => isConnectionLoss(error instanceof ProjectionError ? error.cause : error));
  } catch (error) {
    if (error instanceof Aborted) {
      return { aborted: true, processed: 0, full: false, advanced: false };
    }
    throw missingTable(error, target.tables);
  }
  if (logger && (processed > 0 || checkpoint)) {
    const fields = {
      projection: projection.name,
      processed,
      skippedSegments: target.owned.length - locked,
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
