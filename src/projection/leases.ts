/**
 * The SQL of consumer groups: members' heartbeats and segments' leases,
 * every time judged by the database's clock (`clock_timestamp()`), never
 * a worker's. Leases say who should work on a segment; the batch's row
 * lock and compare-and-set checkpoint keep it safe whatever they say.
 *
 * @module
 */

import { arrayLiteral, type Db, int4Array, missingTable, table } from "../postgres/internal.ts";
import type { ResolvedTables } from "../postgres/internal.ts";

/**
 * The `owner_id` a static worker (`partitionKey`/`totalPartitions`) writes
 * on the checkpoints it moves, so group members can tell its segments from
 * theirs. A member id cannot be it (no parentheses in member ids).
 */
export const STATIC_OWNER = "(static)";

/** Which group: the tables and the projection. */
export interface GroupKey {
  tables: ResolvedTables;
  /** The projection's name. */
  name: string;
}

/** What a heartbeat learned. */
export interface Heartbeat {
  /** The other live members' ids, as the database's clock judges them. */
  others: string[];
  /** The segments whose lease this member holds and has just renewed, ascending. */
  owned: number[];
  /** A segment a static worker moved within the lease time, if any. */
  staticSegment: number | undefined;
}

/** `leaseMs` from now by the database's clock. */
function expiry(db: Db, leaseMs: number) {
  return db`clock_timestamp() + make_interval(secs => ${leaseMs / 1000}::float8)`;
}

/**
 * Joins `memberIds` to the group, or renews their membership: upserts
 * their rows in the members table, expiring `leaseMs` from now.
 */
export async function registerMembers(
  db: Db,
  group: GroupKey,
  memberIds: readonly string[],
  leaseMs: number,
): Promise<void> {
  const members = table(db, group.tables.groupMembers);
  await db`
    insert into ${members} (projection_name, member_id, heartbeat_at, expires_at)
    select ${group.name}, m, clock_timestamp(), ${expiry(db, leaseMs)}
    from unnest(${arrayLiteral(memberIds)}::text[]) as m
    on conflict (projection_name, member_id) do update
      set heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
  `.catch((error) => {
    throw missingTable(error, group.tables);
  });
}

/**
 * One heartbeat of `memberId`, in one statement: renews its membership and
 * the leases it holds (rows another transaction has locked are left for
 * the next beat), forgets members whose membership ran out, and reports
 * the live members, the segments held, and any segment a static worker
 * moved within `leaseMs`.
 */
export async function heartbeat(
  db: Db,
  group: GroupKey,
  memberId: string,
  leaseMs: number,
): Promise<Heartbeat> {
  const members = table(db, group.tables.groupMembers);
  const checkpoints = table(db, group.tables.checkpoints);
  const name = group.name;
  const [row] = await db`
    with member as (
      insert into ${members} (projection_name, member_id, heartbeat_at, expires_at)
      values (${name}, ${memberId}, clock_timestamp(), ${expiry(db, leaseMs)})
      on conflict (projection_name, member_id) do update
        set heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
    ), renewed as (
      update ${checkpoints} set lease_expires_at = ${expiry(db, leaseMs)},
        lease_renewed_at = clock_timestamp()
      where projection_name = ${name} and segment in (
        select segment from ${checkpoints}
        where projection_name = ${name} and owner_id = ${memberId}
        for update skip locked)
      returning segment
    ), gone as (
      delete from ${members}
      where projection_name = ${name} and member_id <> ${memberId}
        and expires_at <= clock_timestamp()
    )
    select
      (select coalesce(array_agg(member_id::text), '{}') from ${members}
        where projection_name = ${name} and member_id <> ${memberId}
          and expires_at > clock_timestamp()) as others,
      (select coalesce(array_agg(segment order by segment), '{}') from renewed) as owned,
      (select min(segment) from ${checkpoints}
        where projection_name = ${name} and owner_id = ${STATIC_OWNER}
          and updated_at > clock_timestamp() - make_interval(secs => ${
    leaseMs / 1000
  }::float8)) as static_segment
  `.catch((error) => {
    throw missingTable(error, group.tables);
  });
  return {
    others: parseArray(row.others),
    owned: parseArray(row.owned).map(Number),
    staticSegment: row.static_segment === null ? undefined : Number(row.static_segment),
  };
}

/**
 * Takes up to `count` segments nobody holds: free ones (never leased,
 * released, or last moved by static workers longer than `leaseMs` ago)
 * and ones whose lease has run out. Rows another transaction has locked
 * are skipped; each row changes hands under its row lock, so two members
 * never take one segment. Returns the segments taken, ascending.
 */
export async function acquireLeases(
  db: Db,
  group: GroupKey,
  memberId: string,
  leaseMs: number,
  count: number,
): Promise<number[]> {
  const checkpoints = table(db, group.tables.checkpoints);
  const name = group.name;
  const rows = await db`
    update ${checkpoints} as c
    set owner_id = ${memberId}, lease_acquired_at = clock_timestamp(),
      lease_renewed_at = clock_timestamp(), lease_expires_at = ${expiry(db, leaseMs)}
    where c.projection_name = ${name} and c.segment in (
      select segment from ${checkpoints}
      where projection_name = ${name}
        and (owner_id is null
          or (owner_id = ${STATIC_OWNER} and updated_at <= clock_timestamp() - make_interval(secs => ${
    leaseMs / 1000
  }::float8))
          or (owner_id <> ${STATIC_OWNER} and owner_id <> ${memberId}
            and lease_expires_at <= clock_timestamp()))
      order by segment
      limit ${count}
      for update skip locked)
    returning c.segment
  `.values();
  return rows.map((row) => Number(row[0])).sort((a, b) => a - b);
}

/**
 * Gives up `segments` (or every segment, when `undefined`) that
 * `memberId` holds: they are free at once for another member. Called
 * between batches, never during one.
 */
export async function releaseLeases(
  db: Db,
  group: GroupKey,
  memberId: string,
  segments?: readonly number[],
): Promise<number[]> {
  const some = segments === undefined
    ? db``
    : db`and segment = any(${int4Array(segments)}::int4[])`;
  const rows = await db`
    update ${table(db, group.tables.checkpoints)}
    set owner_id = null, lease_expires_at = null, lease_acquired_at = null,
      lease_renewed_at = null
    where projection_name = ${group.name} and owner_id = ${memberId} ${some}
    returning segment
  `.values();
  return rows.map((row) => Number(row[0])).sort((a, b) => a - b);
}

/** Leaves the group: releases every lease of `memberId` and removes its membership. */
export async function leaveGroup(db: Db, group: GroupKey, memberId: string): Promise<void> {
  await releaseLeases(db, group, memberId);
  await db`
    delete from ${table(db, group.tables.groupMembers)}
    where projection_name = ${group.name} and member_id = ${memberId}`;
}

/**
 * The first of `segments` that a live group member leases, for a static
 * worker to refuse to start next to a group.
 */
export async function liveGroupLease(
  db: Db,
  group: GroupKey,
  segments: readonly number[],
): Promise<{ segment: number; owner: string } | undefined> {
  const [row] = await db`
    select segment, owner_id from ${table(db, group.tables.checkpoints)}
    where projection_name = ${group.name} and segment = any(${int4Array(segments)}::int4[])
      and owner_id <> ${STATIC_OWNER} and lease_expires_at > clock_timestamp()
    order by segment limit 1
  `.values();
  return row ? { segment: Number(row[0]), owner: String(row[1]) } : undefined;
}

/** A text or int array column, as postgres.js gives it with or without its array types. */
function parseArray(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  const text = String(value);
  if (text === "{}") return [];
  return text.slice(1, -1).split(",").map((item) =>
    item.startsWith('"') ? item.slice(1, -1).replace(/\\(.)/g, "$1") : item
  );
}

/**
 * Ends the database sessions of members that hold a segment's row lock
 * (inside a batch) more than `leaseMs` after their lease ran out: a
 * process paused or hung mid-batch (SIGSTOP, a debugger, a stalled
 * handler) would otherwise keep the segment from every other member for
 * as long as it stays stopped. PostgreSQL rolls the batch back; the
 * member, if it wakes, finds its connection gone and its lease taken.
 * Needs the right to signal those sessions (the same role, or
 * `pg_signal_backend`). Returns how many sessions were ended.
 */
export async function endStalledHolders(
  db: Db,
  group: GroupKey,
  memberId: string,
  leaseMs: number,
): Promise<number> {
  const rows = await db`
    select pg_terminate_backend(a.pid)
    from ${table(db, group.tables.checkpoints)} as c
    join pg_stat_activity as a on a.backend_xid = c.xmax
    where c.projection_name = ${group.name} and c.owner_id <> ${STATIC_OWNER}
      and c.owner_id <> ${memberId}
      and c.lease_expires_at <= clock_timestamp() - make_interval(secs => ${leaseMs / 1000}::float8)
      and a.datname = current_database() and a.pid <> pg_backend_pid()
  `.values();
  return rows.filter((row) => row[0] === true).length;
}
