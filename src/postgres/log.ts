/**
 * The log reader: the one place that reads the events table in log order.
 * {@linkcode PostgresStore.readEvents} and the projections both read
 * through it.
 *
 * The global log is read only below the safe horizon, `transaction_id <
 * pg_snapshot_xmin(pg_current_snapshot())` plus the log's ordering offset
 * (see ./order.ts), in `(transaction_id, global_position)` order, after a
 * cursor that is that pair: an event whose transaction commits late is
 * never skipped, it waits below the horizon until every older transaction
 * has ended. Every read carries the regression guard: a log or a cursor
 * from another cluster's ids refuses the read as a whole.
 *
 * @module
 */

import type { PendingQuery, Row } from "postgres";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { arrayLiteral, type Db, table, toBigInt } from "./db.ts";
import { decodeEvent, EVENT_COLUMN_COUNT, eventColumns } from "./decode.ts";
import {
  horizonSql,
  regressionFromVerdict,
  regressionGuardSql,
  regressionOf,
  regressionVerdictSql,
} from "./order.ts";
import { quote, type ResolvedTables } from "./tables.ts";

/** Which events a read takes, filtered in SQL; every field validated already. */
export interface LogScope {
  /** Only events of these aggregate types; default: all. */
  aggregateTypes?: readonly string[];
  /** Only events of these event types; default: all. */
  eventTypes?: readonly string[];
  /** Only events whose segment (`aggregate_id_hash % count`) is one of `ids`; default: all. */
  segments?: { count: number; ids: readonly number[] };
}

/**
 * The scope as `and ...` fragments on the events table. The segment
 * filter uses the stored `aggregate_id_hash`, so only a worker's share
 * ever leaves the database; with one segment every event is in it, and
 * there is no filter to evaluate.
 */
function scopeFilter(db: Db, scope: LogScope) {
  const { aggregateTypes, eventTypes, segments } = scope;
  const types = aggregateTypes
    ? db`and aggregate_type = any(${arrayLiteral(aggregateTypes)}::text[])`
    : db``;
  const events = eventTypes ? db`and event_type = any(${arrayLiteral(eventTypes)}::text[])` : db``;
  const owned = !segments || segments.count === 1
    ? db``
    : db`and aggregate_id_hash % ${segments.count} = any(${int4Array(segments.ids)}::int4[])`;
  return db`${types} ${events} ${owned}`;
}

/** Integers as an array literal (`${int4Array(ids)}::int4[]`). */
export function int4Array(values: readonly number[]): string {
  return arrayLiteral(values.map(String));
}

/** `transaction_id < ` the safe horizon, in order keys. */
function belowHorizon(db: Db, tables: ResolvedTables) {
  return db`transaction_id < ${db.unsafe(horizonSql(tables))}`;
}

/**
 * The regression guard (see ./order.ts) on the log and on `cursor`: a
 * cursor, or an xid8 sub-select, such as a projection's furthest
 * checkpoint. A condition that is true or refuses the statement, run once
 * per statement, before its scan.
 */
export function regressionGuard(
  db: Db,
  tables: ResolvedTables,
  cursor: Cursor | PendingQuery<Row[]>,
) {
  return withCursor(db, regressionGuardSql(tables), cursor);
}

/** The regression verdict on the log and `cursor` (see ./order.ts): null when all is well. */
function regressionVerdict(db: Db, tables: ResolvedTables, cursor: Cursor) {
  return withCursor(db, regressionVerdictSql(tables), cursor);
}

function withCursor(
  db: Db,
  [before, after]: [string, string],
  cursor: Cursor | PendingQuery<Row[]>,
) {
  const key = "transactionId" in cursor ? String(cursor.transactionId) : cursor;
  return db`${db.unsafe(before)}${key}${db.unsafe(after)}`;
}

/** Rethrows the guard's refusal as a `TransactionIdRegressionError`. */
function refusal(error: unknown): never {
  throw regressionOf(error) ?? error;
}

/**
 * Reads up to `limit` events after `after`, in scope, in log order, below
 * the safe horizon.
 *
 * @throws {TransactionIdRegressionError} when the log or `after` holds a
 * transaction id this database has not handed out (a move into a new
 * cluster): nothing is read, and a caller's transaction stays usable (the
 * statement filters instead of raising; an empty page checks why).
 */
export async function readAfter(
  db: Db,
  tables: ResolvedTables,
  after: Cursor,
  limit: number,
  scope: LogScope,
): Promise<PersistedEvent[]> {
  const rows = await db`
    select ${eventColumns(db)} from ${table(db, tables.events)}
    where (transaction_id, global_position) > (${String(after.transactionId)}::xid8, ${
    String(after.globalPosition)
  }::bigint)
      and ${belowHorizon(db, tables)}
      ${scopeFilter(db, scope)}
      and ${regressionVerdict(db, tables, after)} is null
    order by transaction_id, global_position
    limit ${limit}
  `.values();
  // The verdict filters out every row of a moved log without raising, so
  // a caller's transaction stays usable; an empty page says why.
  if (rows.length === 0) await assertCursorInCluster(db, tables, after);
  return rows.map(decodeEvent);
}

/**
 * What {@linkcode lockedShareStatement} runs before its read, in the same
 * statement: the caller's choice of segments (typically locked) and what
 * it needs to know of them.
 */
export interface ShareLock {
  /**
   * Common table expressions (`name as (...)`, comma-separated) that
   * define `locked`: the segments to read, with columns `segment`,
   * `transaction_id` and `global_position` (the segment's cursor). They may
   * use `tip`, the log's last event below the safe horizon as of this
   * statement (columns `transaction_id`, `global_position`; no row while
   * nothing is readable).
   */
  ctes: PendingQuery<Row[]>;
  /** An expression over those tables, one text value handed back as `head`. */
  head: PendingQuery<Row[]>;
}

/** What {@linkcode readLockedShare} read. */
export interface LockedShare {
  /** The value of {@linkcode ShareLock.head}. */
  head: string | null;
  /** The log's tip as of the statement: see {@linkcode tipOf}. */
  tip: Cursor | undefined;
  /** The events read, in log order. */
  page: PersistedEvent[];
  /** The events table's size in pages (8 kB) as of the statement: see {@linkcode sizeClass}. */
  pages: number;
}

/**
 * The size class of an events table of `pages` pages: the power of two
 * at or below it (0 for an empty table). A statement of
 * {@linkcode lockedShareStatement} is written for one class.
 */
export function sizeClass(pages: number): number {
  return pages < 1 ? 0 : Math.floor(Math.log2(pages));
}

/**
 * The statement that, in one go, runs the caller's {@linkcode ShareLock} (a worker
 * locking its checkpoint rows), then reads up to `limit` events of the
 * segments in `locked` (of `count` segments), each after its own
 * segment's cursor, in scope, in log order, below the safe horizon. One
 * statement is one round trip, and one snapshot: the tip, the horizon of
 * the read and the rows the caller locked all agree.
 *
 * The index range starts at the earliest of the cursors, so the scan is
 * one forward walk of the log index from there that stops at `limit`.
 * Each row is also compared with its own segment's cursor, looked up by
 * segment number in an array built once from `locked` (a per-row
 * subscript, no join): a segment not in `locked` has no cursor there, and
 * a comparison with null is never true, so the same test keeps the read
 * to the worker's share. With one segment there is one cursor, and the
 * range is the whole condition; so it is when every segment is in `locked`
 * at one cursor (one worker catching up), and the test per row is skipped.
 *
 * The result is the head row, then the events: a UNION ALL runs its inputs
 * in order, and this statement never runs in parallel (it locks rows), so
 * the events come in the read's own order, with no sort of the whole
 * result.
 *
 * The statement is a fragment, built once and run by
 * {@linkcode readLockedShare} on each batch: it holds no value that changes
 * from one batch to the next (the cursors come from the locked rows), and
 * building its two dozen fragments cost a worker about 0.3-0.5 ms of
 * client time per batch, on the path from a wake-up to the handler.
 * A log moved into a new cluster makes it fail: see
 * {@linkcode readLockedShare}.
 *
 * Its plan is made once per connection and size class. Planning it took
 * 0.6 ms of server time per batch, more than a third of the statement's
 * cost on a warm log: PostgreSQL planned it again on every run because
 * its generic plan, costed with the limit and the segment count unknown
 * (a tenth of the log, a thousand segments), lost to the custom ones.
 * Both are written into the text, and the generic plan is kept. But a
 * plan kept is made for the table as it was: on a young table it reads
 * the whole range after the cursor and sorts it, and it would go on doing
 * so as the table grows, until an ANALYZE. So the text also names the
 * table's size class (`planFor`, from {@linkcode sizeClass}; the statement
 * reports the size), and a worker moves to the next class's text, planned
 * afresh, once the table has doubled: no plan serves a table more than
 * twice the size it was made for.
 */
export function lockedShareStatement(
  db: Db,
  tables: ResolvedTables,
  lock: ShareLock,
  count: number,
  limit: number,
  scope: Omit<LogScope, "segments">,
  planFor: number,
): PendingQuery<Row[]> {
  const events = table(db, tables.events);
  return db`
    -- planned for an events table of 2^${literalInteger(db, "planFor", planFor)} pages
    with tip as materialized (
      select transaction_id, global_position from ${events} where ${belowHorizon(db, tables)}
      order by transaction_id desc, global_position desc limit 1
    ), ${lock.ctes}
    select ${db.unsafe(NO_EVENT)}, ${lock.head},
      (select transaction_id from tip), (select global_position from tip),
      pg_relation_size(${db.unsafe(`'${quote(tables.events)}'`)}::regclass) / 8192
    union all
    (select ${eventColumns(db)}, null, null, null, null from ${events}
    where (transaction_id, global_position) > (select transaction_id, global_position
        from locked order by transaction_id, global_position limit 1)
      and ${belowHorizon(db, tables)}
      ${scopeFilter(db, scope)}
      ${count === 1 ? db`` : ownCursor(db, count)}
      and ${
    regressionGuard(
      db,
      tables,
      db`(select transaction_id from locked order by transaction_id desc limit 1)`,
    )
  }
    order by transaction_id, global_position
    limit ${literalInteger(db, "limit", limit)})
  `;
}

/**
 * Runs a statement of {@linkcode lockedShareStatement} on `db` (the
 * batch's transaction) and decodes what it read.
 *
 * @throws {TransactionIdRegressionError} when the log or a cursor holds a
 * transaction id this database has not handed out.
 */
export async function readLockedShare(
  db: Db,
  statement: PendingQuery<Row[]>,
): Promise<LockedShare> {
  const rows = await db`${statement}`.values().catch(refusal);
  const head = rows[0];
  const read: PersistedEvent[] = new Array(rows.length - 1);
  for (let i = 1; i < rows.length; i++) read[i - 1] = decodeEvent(rows[i]);
  return {
    head: head[EVENT_COLUMN_COUNT] as string | null,
    tip: tipOf(head[EVENT_COLUMN_COUNT + 1], head[EVENT_COLUMN_COUNT + 2]),
    page: read,
    pages: Number(head[EVENT_COLUMN_COUNT + 3]),
  };
}

/**
 * A non-negative integer written into a statement's text, where a
 * parameter would make its generic plan guess (see
 * {@linkcode lockedShareStatement}).
 */
function literalInteger(db: Db, name: string, value: number) {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name}: expected a non-negative integer, got ${value}`);
  }
  return db.unsafe(String(value));
}

/** The event columns of the head row: none. */
const NO_EVENT = new Array(EVENT_COLUMN_COUNT).fill("null").join(", ");

/**
 * `and (transaction_id, global_position) >` the cursor of the row's own
 * segment in `locked`, unless every segment is in `locked` at one cursor:
 * then the index range is the whole condition.
 */
function ownCursor(db: Db, count: number) {
  // Arrays indexed by segment + 1, built once (InitPlans); segments not in
  // `locked` stay null there.
  const bySegment = (column: string) =>
    db`(select array_agg(l.${db.unsafe(column)} order by s) from generate_series(0, ${
      literalInteger(db, "count", count - 1)
    }) as s left join locked as l on l.segment = s)`;
  const n = literalInteger(db, "count", count);
  const index = db`(aggregate_id_hash % ${n})::int4 + 1`;
  // One worker catching up on all the segments moves them together: after
  // its first batch they share one cursor. The test per row (two array
  // subscripts and a row comparison, about half a microsecond an event,
  // a twentieth of a batch's server time) is then skipped: OR stops at
  // its first true argument, here a value computed once (an InitPlan).
  const together = db`(select count(*) = ${n}
      and count(distinct (transaction_id, global_position)) = 1 from locked)`;
  return db`and (${together} or (transaction_id, global_position) > (
    ${bySegment("transaction_id")}[${index}], ${bySegment("global_position")}[${index}]))`;
}

/**
 * The log's last event below the horizon, of any scope, as two columns
 * (`tip_tx`, `tip_pos`), for a select list: a caller reads it in the same
 * statement as its own rows (see {@linkcode tipOf}).
 */
export function tipColumns(db: Db, tables: ResolvedTables) {
  const events = table(db, tables.events);
  // Two uncorrelated subqueries: each runs once (an InitPlan), as one
  // backward step on the (transaction_id, global_position) index.
  return db`
    (select transaction_id from ${events} where ${belowHorizon(db, tables)}
     order by transaction_id desc, global_position desc limit 1) as tip_tx,
    (select global_position from ${events} where ${belowHorizon(db, tables)}
     order by transaction_id desc, global_position desc limit 1) as tip_pos`;
}

/** The tip from the values of {@linkcode tipColumns}; `undefined` when nothing is readable yet. */
export function tipOf(tx: unknown, position: unknown): Cursor | undefined {
  return tx === null || tx === undefined
    ? undefined
    : { transactionId: toBigInt(tx), globalPosition: toBigInt(position) };
}

/**
 * Whether committed events in scope wait behind the horizon (an older
 * transaction is still open), as one boolean column (`pending`) for a
 * select list.
 */
export function pendingColumn(db: Db, tables: ResolvedTables, scope: LogScope) {
  // The first key at or above the horizon: an index range that holds only
  // the events of transactions that ended after the oldest one still
  // open. The ORDER BY and LIMIT keep the index; EXISTS (or a negated
  // bound) let the planner scan the whole table on every idle poll.
  return db`(select transaction_id from ${table(db, tables.events)}
    where transaction_id >= ${db.unsafe(horizonSql(tables))} ${scopeFilter(db, scope)}
    order by transaction_id limit 1) is not null as pending`;
}

/** How many committed events wait behind the horizon, as one column (`pending`). */
export function pendingCountColumn(db: Db, tables: ResolvedTables) {
  return db`(select count(*) from ${table(db, tables.events)}
    where not ${belowHorizon(db, tables)}) as pending`;
}

/**
 * The events at `positions` (global positions), in log order: the events
 * a projection parked, read again for a listing or a replay. Positions
 * with no event are left out.
 */
export async function readAtPositions(
  db: Db,
  tables: ResolvedTables,
  positions: readonly bigint[],
): Promise<PersistedEvent[]> {
  if (positions.length === 0) return [];
  const rows = await db`
    select ${eventColumns(db)} from ${table(db, tables.events)}
    where global_position = any(${arrayLiteral(positions.map(String))}::int8[])
    order by transaction_id, global_position
  `.values();
  return rows.map(decodeEvent);
}

/**
 * Throws when the log or `cursor` holds a transaction id the database has
 * not handed out yet, which happens after a move into a new cluster.
 *
 * @throws {TransactionIdRegressionError}
 */
export async function assertCursorInCluster(
  db: Db,
  tables: ResolvedTables,
  cursor: Cursor,
): Promise<void> {
  const [[verdict]] = await db`select ${regressionVerdict(db, tables, cursor)}`.values();
  const regression = regressionFromVerdict(verdict as string | null);
  if (regression) throw regression;
}
