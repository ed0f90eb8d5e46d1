/**
 * The log as operations see it: per checkpoint row, the committed events
 * of its segment after its cursor (also those still waiting behind the
 * safe horizon) and the age of the oldest of them; whether a cursor is
 * below the horizon; how many events a scope holds; where the log's tail
 * starts. For status reports, rebuild progress, read-your-writes and
 * `tail`; never on a batch's path.
 *
 * @module
 */

import type { Cursor } from "../es/event.ts";
import { arrayLiteral, type Db, table, toBigInt } from "./db.ts";
import { horizonSql } from "./order.ts";
import type { ResolvedTables } from "./tables.ts";

/** One checkpoint row and what its segment has not applied yet. */
export interface SegmentLag {
  projection: string;
  segment: number;
  segmentCount: number;
  cursor: Cursor;
  updatedAt: Date;
  /** Committed events of the segment (and scope) after the cursor. */
  lagEvents: bigint;
  /** Seconds since the oldest of them was appended (database clock); 0 when none. */
  ageSeconds: number;
}

/** Which events count as not applied: a scope, validated already. */
export interface LagScope {
  aggregateTypes?: readonly string[];
  eventTypes?: readonly string[];
}

/**
 * The checkpoint rows of `names` (every projection when `undefined`), by
 * projection and segment, each with its lag. `scopes` narrows the count
 * to a projection's aggregate and event types; a projection without one
 * counts every event of its segments (an upper bound while it catches up:
 * idle, its checkpoints move past events out of scope anyway).
 *
 * One lateral count per row over the index range after its cursor: cheap
 * when caught up, proportional to the lag otherwise.
 */
export async function segmentLag(
  db: Db,
  tables: ResolvedTables,
  names: readonly string[] | undefined,
  scopes: ReadonlyMap<string, LagScope> = new Map(),
): Promise<SegmentLag[]> {
  const events = table(db, tables.events);
  const scoped = [...scopes].filter(([, s]) => s.aggregateTypes || s.eventTypes);
  // Scopes travel as arrays indexed like `scopedNames`: no SQL text per name.
  const scopedNames = scoped.map(([name]) => name);
  const types = scoped.map(([, s]) => s.aggregateTypes?.join("\u0001") ?? null);
  const eventTypes = scoped.map(([, s]) => s.eventTypes?.join("\u0001") ?? null);
  const rows = await db`
    with scopes as (
      select * from unnest(${arrayLiteral(scopedNames)}::text[], ${arrayLiteral(types)}::text[],
        ${arrayLiteral(eventTypes)}::text[]) as s(name, aggregate_types, event_types)
    )
    select c.projection_name, c.segment, c.segment_count, c.transaction_id, c.global_position,
      c.updated_at, l.n, l.age
    from ${table(db, tables.checkpoints)} as c
    left join scopes s on s.name = c.projection_name
    cross join lateral (
      select count(*) as n,
        coalesce(extract(epoch from now() - min(e.created_at)), 0)::float8 as age
      from ${events} as e
      where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
        and (c.segment_count = 1 or e.aggregate_id_hash % c.segment_count = c.segment)
        and (s.aggregate_types is null
          or e.aggregate_type = any(string_to_array(s.aggregate_types, E'\\x01')))
        and (s.event_types is null
          or e.event_type = any(string_to_array(s.event_types, E'\\x01')))
    ) as l
    where ${
    names === undefined ? db`true` : db`c.projection_name = any(${arrayLiteral(names)}::text[])`
  }
    order by c.projection_name, c.segment
  `.values();
  return rows.map((
    [projection, segment, count, tx, position, updatedAt, n, age],
  ) => ({
    projection: projection as string,
    segment: Number(segment),
    segmentCount: Number(count),
    cursor: { transactionId: toBigInt(tx), globalPosition: toBigInt(position) },
    updatedAt: new Date(updatedAt as Date),
    lagEvents: toBigInt(n),
    ageSeconds: Math.max(0, Number(age)),
  }));
}

/**
 * Whether every event at or before `cursor` is below the safe horizon now:
 * no transaction that could still add an event at or before it is open.
 */
export async function belowHorizon(
  db: Db,
  tables: ResolvedTables,
  cursor: Cursor,
): Promise<boolean> {
  const [[below]] = await db`
    select ${String(cursor.transactionId)}::xid8 < ${db.unsafe(horizonSql(tables))}
  `.values();
  return below === true;
}

/** How many events of `scope` the log holds (committed, below the horizon or not). */
export async function countEvents(
  db: Db,
  tables: ResolvedTables,
  scope: LagScope,
): Promise<bigint> {
  const { aggregateTypes, eventTypes } = scope;
  const [[count]] = await db`
    select count(*) from ${table(db, tables.events)}
    where true
      ${
    aggregateTypes ? db`and aggregate_type = any(${arrayLiteral(aggregateTypes)}::text[])` : db``
  }
      ${eventTypes ? db`and event_type = any(${arrayLiteral(eventTypes)}::text[])` : db``}
  `.values();
  return toBigInt(count);
}

/**
 * The cursor just before the last `count` events below the safe horizon
 * (the start of the log when it holds fewer), to read the log's tail.
 */
export async function cursorBeforeLast(
  db: Db,
  tables: ResolvedTables,
  count: number,
): Promise<Cursor> {
  const [row] = await db`
    select transaction_id, global_position from ${table(db, tables.events)}
    where transaction_id < ${db.unsafe(horizonSql(tables))}
    order by transaction_id desc, global_position desc
    offset ${count} limit 1
  `.values();
  return row
    ? { transactionId: toBigInt(row[0]), globalPosition: toBigInt(row[1]) }
    : { transactionId: 0n, globalPosition: 0n };
}
