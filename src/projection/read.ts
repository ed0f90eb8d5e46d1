/**
 * The batch read of one worker: the events of its locked segments after
 * each segment's own cursor, in log order, below the safe horizon, in
 * scope, in one statement.
 *
 * @module
 */

import type { PersistedEvent } from "../es/event.ts";
import type { Db } from "../postgres/db.ts";
import { arrayLiteral, table } from "../postgres/db.ts";
import { decodeEvent, eventColumns } from "../postgres/decode.ts";
import type { CheckpointRow } from "./checkpoints.ts";
import { compareCursors, minCursor } from "./cursor.ts";
import { scopeFilter, type Target } from "./target.ts";

/**
 * Reads up to `limit` events of the `locked` segments, each after its own
 * segment's cursor, in `(transaction_id, global_position)` order and only
 * below `pg_snapshot_xmin(pg_current_snapshot())`.
 *
 * The index range starts at the earliest of the cursors, so the scan is one
 * forward walk of the log index from there. Segments usually share one
 * cursor (a batch moves all the segments it locked together), and then
 * that bound is the whole condition. When they differ (after a change of
 * worker count), each row is also compared with its own segment's cursor,
 * looked up by segment number in an array parameter: a per-row subscript,
 * no join, so the plan stays an ordered index scan that stops at `limit`.
 */
export async function readBatch(
  db: Db,
  target: Target,
  locked: readonly CheckpointRow[],
  limit: number,
): Promise<PersistedEvent[]> {
  const from = minCursor(locked.map((row) => row.cursor));
  const uniform = locked.every((row) => compareCursors(row.cursor, from) === 0);
  const rows = await db`
    select ${eventColumns(db)} from ${table(db, target.tables.events)}
    where (transaction_id, global_position) >
        (${String(from.transactionId)}::xid8, ${String(from.globalPosition)}::bigint)
      and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      ${scopeFilter(db, target, locked.map((row) => row.segment))}
      ${uniform ? db`` : perSegmentCursor(db, target, locked)}
    order by transaction_id, global_position
    limit ${limit}
  `.values();
  return rows.map(decodeEvent);
}

/** `and (transaction_id, global_position) > cursor of the row's own segment`. */
function perSegmentCursor(db: Db, target: Target, locked: readonly CheckpointRow[]) {
  // Arrays indexed by segment + 1; segments not locked stay null, and a
  // comparison with null is never true, which excludes them a second time.
  const txs: (string | null)[] = new Array(target.segments).fill(null);
  const positions: (string | null)[] = new Array(target.segments).fill(null);
  for (const row of locked) {
    txs[row.segment] = String(row.cursor.transactionId);
    positions[row.segment] = String(row.cursor.globalPosition);
  }
  const index = db`(aggregate_id_hash % ${target.segments})::int4 + 1`;
  return db`and (transaction_id, global_position) > (
    (${arrayLiteral(txs)}::text[])[${index}]::xid8,
    (${arrayLiteral(positions)}::text[])[${index}]::bigint)`;
}
