/**
 * The checkpoint rows: one per (projection, segment), holding the cursor
 * after the last event the segment has taken, and the segment count the
 * projection was first run with.
 *
 * @module
 */

import type { PendingQuery, Row } from "postgres";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { ValidationError } from "../es/errors.ts";
import {
  type Db,
  int4Array,
  lockedShareStatement,
  missingTable,
  pendingColumn,
  readLockedShare,
  regressionGuard,
  regressionOf,
  sizeClass,
  table,
  tipColumns,
  tipOf,
  toBigInt,
} from "../postgres/internal.ts";
import { STATIC_OWNER } from "./leases.ts";
import type { Target } from "./target.ts";

/** One segment's checkpoint. */
export interface CheckpointRow {
  segment: number;
  segmentCount: number;
  cursor: Cursor;
  /** The group member whose lease on the segment is live, if any (as locked). */
  leasedBy?: string;
}

/** The checkpoints of a worker's segments, read in one statement with the log's tip. */
export interface CheckpointView {
  /** The rows read (or locked), by segment. */
  rows: CheckpointRow[];
  /**
   * The last event below the safe horizon, of any scope, as of this
   * statement: every event up to it is readable now and for ever, so a
   * segment that has read everything of its share up to here may move its
   * cursor here. `undefined` when the log has nothing readable yet.
   */
  tip: Cursor | undefined;
}

/**
 * Creates the projection's checkpoint rows (all segments, at the start of
 * the log) if missing, and refuses a segment count other than the one the
 * projection was first run with: changing it would move aggregates to
 * other segments, behind or ahead of their checkpoints.
 *
 * @throws {ValidationError} when the stored segment count differs.
 */
export async function ensureCheckpoints(db: Db, target: Target): Promise<void> {
  const checkpoints = table(db, target.tables.checkpoints);
  const { name, segments } = target;
  // The guard keeps a mismatched run from adding rows of its own count.
  const counts = await db`
    with created as (
      insert into ${checkpoints} (projection_name, segment, segment_count)
      select ${name}, s, ${segments} from generate_series(0, ${segments - 1}) as s
      where not exists (
        select from ${checkpoints} where projection_name = ${name} and segment_count <> ${segments})
      on conflict (projection_name, segment) do nothing
      returning segment_count
    )
    select distinct segment_count from ${checkpoints} where projection_name = ${name}
    union select segment_count from created
  `.values().catch((error) => {
    throw missingTable(error, target.tables);
  });
  const other = counts.map(([count]) => Number(count)).find((count) => count !== segments);
  if (other !== undefined) throw segmentCountMismatch(name, other, segments);
}

/** The error for a projection run with another segment count than its first run. */
export function segmentCountMismatch(name: string, stored: number, got: number): ValidationError {
  return new ValidationError(
    "segments",
    `${stored}, the segment count projection "${name}" was first run with (it is fixed ` +
      `per projection: another count would move aggregates between checkpoints; rebuild ` +
      `the projection under a new name to change it)`,
    String(got),
  );
}

/**
 * The furthest checkpoint of the projection (any segment), to check it
 * against the cluster's transaction ids at startup.
 */
export async function furthestCheckpoint(db: Db, target: Target): Promise<Cursor | undefined> {
  const [row] = await db`
    select transaction_id, global_position from ${table(db, target.tables.checkpoints)}
    where projection_name = ${target.name}
    order by transaction_id desc, global_position desc
    limit 1
  `.values().catch((error) => {
    throw missingTable(error, target.tables);
  });
  return row ? { transactionId: toBigInt(row[0]), globalPosition: toBigInt(row[1]) } : undefined;
}

/** A batch's start: the checkpoint rows it locked, the log's tip, and the events read. */
export interface LockedBatch extends CheckpointView {
  /** The events read after the locked rows' cursors, in log order. */
  page: PersistedEvent[];
  /**
   * The projection may have parked events not yet resolved: `false` means
   * none (of any segment) as of the statement, nor parked since by another
   * batch of these segments, so no aggregate's events wait behind one.
   * Asked only when the target `holdsParked`; `false` otherwise.
   */
  parked: boolean;
}

/**
 * Locks this worker's checkpoint rows for the batch's transaction and
 * reads up to `limit` events of their segments after their cursors, in
 * one statement (one round trip, one snapshot: see `lockedShareStatement`),
 * made once per share by `statements`.
 *
 * Only rows behind the log's tip are locked: a batch with nothing to read
 * locks nothing, so its transaction takes no transaction id and writes
 * nothing. Rows another processor holds are skipped: two processors of
 * the same partition never take the same segment at once, and neither
 * waits on the other. The rows are locked in segment order (LockRows runs
 * above the sort), so overlapping workers cannot deadlock either.
 *
 * A group member locks only the rows whose lease it holds, live by the
 * database's clock: the condition is checked again on each row once it is
 * locked, so a member paused past its lease, whose segments another has
 * taken, locks nothing and applies nothing; and the batch's transaction
 * may sit idle at most twice `leaseMs` (`idle_in_transaction_session_timeout`;
 * a member short of its share also ends sessions that hold rows that long,
 * see `endStalledHolders`), so a member paused inside a batch loses its
 * rows, rolled back, instead of holding them for as long as it is paused.
 * Each row says which live group member leases it, for a static worker to
 * refuse to mix with a group.
 *
 * @throws {TransactionIdRegressionError} when the log or a locked cursor
 * holds a transaction id this cluster has not handed out.
 */
export async function lockAndRead(
  db: Db,
  target: Target,
  limit: number,
  statements: BatchStatements,
): Promise<LockedBatch> {
  const made = statements.get(db, target, limit);
  const read = await readLockedShare(db, made.statement);
  statements.sized(db, target, limit, made, read.pages);
  const [locked, parked] = JSON.parse(read.head!) as [
    [number, number, string, string, string | null][] | null,
    boolean,
  ];
  return {
    rows: (locked ?? []).map(([segment, segmentCount, tx, position, leasedBy]) => ({
      segment,
      segmentCount,
      cursor: { transactionId: BigInt(tx), globalPosition: BigInt(position) },
      ...(leasedBy === null ? {} : { leasedBy }),
    })),
    parked,
    tip: read.tip,
    page: read.page,
  };
}

/** A share's batch statement, and the size class of events table it is planned for. */
interface Made {
  statement: PendingQuery<Row[]>;
  planFor: number;
}

/**
 * The batch statements of one run (one client, one database), by share:
 * its segments, scope and limit, everything a statement's text and
 * parameters depend on. A worker's share rarely changes (a group member's
 * segments, a segment waiting for a retry), so a run makes a handful; the
 * cap only bounds a pathological churn of shares.
 *
 * @example
 * ```ts ignore
 * const statements = new BatchStatements();
 * const batch = await lockAndRead(tx, target, 1000, statements);
 * ```
 */
export class BatchStatements {
  readonly #made = new Map<string, Made>();
  /** The size class the last batch reported: a new share's statement starts there. */
  #size = 0;

  /** The statement for `target`'s share, built on first use. */
  get(db: Db, target: Target, limit: number): Made {
    const key = shareKey(target, limit);
    let made = this.#made.get(key);
    if (!made) {
      if (this.#made.size >= MAX_STATEMENTS_PER_RUN) this.#made.clear();
      made = { statement: buildBatchStatement(db, target, limit, this.#size), planFor: this.#size };
      this.#made.set(key, made);
    }
    return made;
  }

  /**
   * Takes the events table's size as `made`'s statement reported it: once
   * the table has doubled (or halved), the next batch runs a statement
   * planned for its new size (see `lockedShareStatement`).
   */
  sized(db: Db, target: Target, limit: number, made: Made, pages: number): void {
    this.#size = sizeClass(pages);
    if (this.#size === made.planFor) return;
    made.statement = buildBatchStatement(db, target, limit, this.#size);
    made.planFor = this.#size;
  }
}

const MAX_STATEMENTS_PER_RUN = 256;

/** What a share's statement depends on, as one string. */
function shareKey(target: Target, limit: number): string {
  const { name, segments, owned, member, aggregateTypes, eventTypes, holdsParked } = target;
  return JSON.stringify([
    name,
    segments,
    owned,
    member,
    aggregateTypes,
    eventTypes,
    holdsParked,
    limit,
  ]);
}

/** Builds that statement: the rows to lock, and the read of their share (see `lockedShareStatement`). */
function buildBatchStatement(
  db: Db,
  target: Target,
  limit: number,
  planFor: number,
): PendingQuery<Row[]> {
  const { member, aggregateTypes, eventTypes } = target;
  const leased = member === undefined
    ? db``
    : db`and c.owner_id = ${member.id} and c.lease_expires_at > clock_timestamp()`;
  // A paused member (SIGSTOP, a long GC pause, a network partition) must
  // not hold its rows long past its lease: PostgreSQL ends a transaction
  // idle that long, so the others can take the segments.
  const idle = member === undefined ? db`` : db`, (select set_config(
      'idle_in_transaction_session_timeout', ${
    String(Math.ceil(2 * member.leaseMs))
  }, true)) as idle`;
  // Only a policy that holds events behind parked ones asks: the others
  // need no parked-events table (nor its index probe on every batch).
  // Only a batch that holds a segment's row parks its events, and it moves
  // the row in the same transaction. So a parked event this statement's
  // snapshot cannot see was parked by a transaction that moved a locked
  // row after the snapshot: the row as locked (its newest version) differs
  // from the row as the snapshot sees it, and the answer is "maybe".
  const checkpoints = table(db, target.tables.checkpoints);
  const parkedSql = target.holdsParked
    ? db`(exists (select from ${table(db, target.tables.parkedEvents)}
          where projection_name = ${target.name} and status = 'parked')
        or exists (select from locked as l join ${checkpoints} as seen
          on seen.projection_name = ${target.name} and seen.segment = l.segment
          where (seen.transaction_id, seen.global_position)
            <> (l.transaction_id, l.global_position)))`
    : db`false`;
  return lockedShareStatement(
    db,
    target.tables,
    {
      ctes: db`locked as materialized (
      select c.segment, c.segment_count, c.transaction_id, c.global_position,
        case when c.owner_id <> ${STATIC_OWNER} and c.lease_expires_at > clock_timestamp()
          then c.owner_id end as leased_by
      from ${table(db, target.tables.checkpoints)} as c ${idle}
      where c.projection_name = ${target.name}
        and c.segment = any(${int4Array(target.owned)}::int4[]) ${leased}
        and (c.transaction_id, c.global_position) < (select transaction_id, global_position from tip)
      order by c.segment
      for update of c skip locked
    )`,
      head: db`json_build_array((select json_agg(json_build_array(segment, segment_count,
        transaction_id::text, global_position::text, leased_by) order by segment) from locked),
        ${parkedSql})::text`,
    },
    target.segments,
    limit,
    { aggregateTypes, eventTypes },
    planFor,
  );
}

/** What a poll needs: the checkpoints (unlocked), the tip, and whether events wait. */
export interface Probe extends CheckpointView {
  /**
   * Events of this worker's share are committed but not yet below the safe
   * horizon (an older transaction is still open): poll again soon rather
   * than back off.
   */
  pending: boolean;
}

/**
 * Reads this worker's checkpoints without locking or writing anything (no
 * transaction id is spent on an idle poll), with the log's tip and whether
 * committed events wait behind the horizon. Every poll carries the
 * regression guard, on the log and on the projection's furthest
 * checkpoint: after a move into a new cluster it refuses with
 * `TransactionIdRegressionError` instead of idling.
 */
export async function probeCheckpoints(db: Db, target: Target): Promise<Probe> {
  const { aggregateTypes, eventTypes, segments: count, owned: ids } = target;
  const share = { aggregateTypes, eventTypes, segments: { count, ids } };
  const rows = await db`
    select c.segment, c.segment_count, c.transaction_id, c.global_position, ${
    tipColumns(db, target.tables)
  }, ${pendingColumn(db, target.tables, share)}
    from ${table(db, target.tables.checkpoints)} as c
    where c.projection_name = ${target.name}
      and c.segment = any(${int4Array(target.owned)}::int4[])
      and ${regressionGuard(db, target.tables, furthest(db, target))}
    order by c.segment
  `.values().catch((error) => {
    throw regressionOf(error) ?? missingTable(error, target.tables);
  });
  return { ...toView(rows), pending: rows.some((row) => row[6] === true) };
}

/** The projection's furthest checkpoint key, as a sub-select for the regression guard. */
function furthest(db: Db, target: Target) {
  return db`(select transaction_id from ${table(db, target.tables.checkpoints)}
    where projection_name = ${target.name} order by transaction_id desc limit 1)`;
}

/**
 * Moves the checkpoints of `segments` forward to `cursor`, never backwards
 * (compare-and-set on the pair), in the batch's transaction. A static
 * worker marks the rows as its own ({@linkcode STATIC_OWNER}), so group
 * members refuse to run next to it.
 */
export async function advanceCheckpoints(
  db: Db,
  target: Target,
  segments: readonly number[],
  cursor: Cursor,
): Promise<void> {
  const tx = String(cursor.transactionId);
  const position = String(cursor.globalPosition);
  const mark = target.member === undefined
    ? db`, owner_id = ${STATIC_OWNER}, lease_expires_at = null`
    : db``;
  await db`
    update ${table(db, target.tables.checkpoints)}
    set transaction_id = ${tx}::xid8, global_position = ${position}::bigint,
      updated_at = now() ${mark}
    where projection_name = ${target.name}
      and segment = any(${int4Array(segments)}::int4[])
      and (transaction_id, global_position) < (${tx}::xid8, ${position}::bigint)
  `;
}

function toView(rows: readonly unknown[][]): CheckpointView {
  const first = rows[0];
  return {
    rows: rows.map((row) => ({
      segment: Number(row[0]),
      segmentCount: Number(row[1]),
      cursor: { transactionId: toBigInt(row[2]), globalPosition: toBigInt(row[3]) },
    })),
    tip: first ? tipOf(first[4], first[5]) : undefined,
  };
}
