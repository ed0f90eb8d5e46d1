/**
 * The append's wake-up NOTIFY, sent after the commit.
 *
 * PostgreSQL serializes the commits of transactions that NOTIFY: the first
 * takes a database-wide lock before its commit record and holds it until
 * the commit is flushed. A `pg_notify` inside every append therefore makes
 * concurrent appends commit one fsync at a time (measured: 8 clients ran at
 * less than half the throughput). An append on a plain client commits on its
 * own, so the NOTIFY follows in its own short transaction, which has written
 * nothing and waits for no flush; while one is on its way, further appends'
 * wake-ups are gathered into the next. Inside a caller's transaction the
 * append still NOTIFYs in that transaction, so the wake-up leaves at its
 * commit and never before.
 *
 * A wake-up is a hint: processors poll as well, so a NOTIFY lost to a
 * dropped connection delays projections, never skips an event.
 *
 * @module
 */

import { setTimeout } from "node:timers";
import type { Logger } from "../es/logger.ts";
import type { Db } from "./db.ts";
import { arrayLiteral } from "./db.ts";

/** What a wake-up needs of its store: one such value per store. */
export interface WakeUpContext {
  /** The NOTIFY channel, or `undefined` when wake-ups are off. */
  readonly notifyChannel: string | undefined;
  /** Where a failed NOTIFY is logged. */
  readonly logger: Logger | undefined;
}

/**
 * The gap between two wake-ups of one store on one client. The first
 * append after a quiet spell NOTIFYs at once; the appends that follow
 * within the gap share one NOTIFY at its end. Measured: one NOTIFY per
 * append cost a sequential appender 20% of its throughput.
 *
 * While several appends keep sharing each NOTIFY, the gap doubles, up to
 * the longest: with 8 clients appending, NOTIFYs every 2 ms still cost 7%
 * of the throughput, every 10 ms 2%. A wake-up then waits at most that
 * long, and only while appends keep coming; one shared by a single append
 * brings the gap back to the shortest.
 */
const SHORTEST_GAP_MS = 2;
const LONGEST_GAP_MS = 10;

interface Pending {
  /** A NOTIFY is on its way, or waiting for the gap to pass. */
  busy: boolean;
  /** When the last NOTIFY was sent (`performance.now()`). */
  last: number;
  /** The gap before the next NOTIFY. */
  gap: number;
  /** The appends whose wake-up is not sent yet. */
  appends: number;
  types: Set<string>;
}

/** Per client, per store: the aggregate types whose wake-up is not sent yet. */
const pending = new WeakMap<object, WeakMap<WakeUpContext, Pending>>();

/**
 * NOTIFYs the store's channel, once per aggregate type, after an append on
 * `db` committed. Returns at once; failures go to the store's logger.
 */
export function wakeUpAfterCommit(db: Db, context: WakeUpContext, aggregateType: string): void {
  const channel = context.notifyChannel;
  if (channel === undefined) return;
  let byContext = pending.get(db);
  if (!byContext) pending.set(db, byContext = new WeakMap());
  let state = byContext.get(context);
  if (!state) {
    byContext.set(
      context,
      state = { busy: false, last: -Infinity, gap: SHORTEST_GAP_MS, appends: 0, types: new Set() },
    );
  }
  state.types.add(aggregateType);
  state.appends++;
  if (!state.busy) schedule(db, context, channel, state);
}

function schedule(db: Db, context: WakeUpContext, channel: string, state: Pending): void {
  state.busy = true;
  const wait = state.last + state.gap - performance.now();
  if (wait <= 0) {
    void send(db, context, channel, state);
    return;
  }
  // A pending wake-up never keeps a process alive: it is a hint, and
  // processors poll as well.
  setTimeout(() => void send(db, context, channel, state), wait).unref();
}

async function send(db: Db, context: WakeUpContext, channel: string, state: Pending) {
  const types = [...state.types];
  state.types.clear();
  state.gap = state.appends > 1 ? Math.min(state.gap * 2, LONGEST_GAP_MS) : SHORTEST_GAP_MS;
  state.appends = 0;
  state.last = performance.now();
  try {
    await db`select pg_notify(${channel}, t) from unnest(${arrayLiteral(types)}::text[]) as t`;
  } catch (error) {
    context.logger?.error("wake-up NOTIFY failed: projections will find the events by polling", {
      channel,
      aggregateTypes: types,
      error: error instanceof Error ? error.message : String(error),
    });
  }
  state.busy = false;
  if (state.types.size > 0) schedule(db, context, channel, state);
}

/** Per transaction, per store: the aggregate types already NOTIFYing at its commit. */
const claimed = new WeakMap<object, WeakMap<WakeUpContext, Set<string>>>();

/**
 * Inside a caller's transaction, only the first append of each aggregate
 * type carries the NOTIFY: PostgreSQL sends one per transaction anyway, and
 * `pg_notify` in each of 100 appends of one transaction cost them 10% of
 * their throughput. Returns whether this append is the one to NOTIFY.
 */
export function claimTransactionNotify(
  tx: Db,
  context: WakeUpContext,
  aggregateType: string,
): boolean {
  let byContext = claimed.get(tx);
  if (!byContext) claimed.set(tx, byContext = new WeakMap());
  let types = byContext.get(context);
  if (!types) byContext.set(context, types = new Set());
  if (types.has(aggregateType)) return false;
  types.add(aggregateType);
  return true;
}

/**
 * NOTIFYs in the caller's transaction for an append that claimed the
 * NOTIFY but stored nothing (its statement's NOTIFY never ran), since the
 * transaction's other appends count on it.
 */
export async function notifyInTransaction(
  tx: Db,
  context: WakeUpContext,
  aggregateType: string,
): Promise<void> {
  await tx`select pg_notify(${context.notifyChannel!}, ${aggregateType})`;
}
