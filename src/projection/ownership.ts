/**
 * Who owns which segment of a projection: the consumer group's leases and
 * members, as the database's clock sees them.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/show.ts";
import { requireName } from "../es/validate.ts";
import { PostgresStore } from "../postgres/mod.ts";
import { missingTable, requireClient, table } from "../postgres/internal.ts";
import { STATIC_OWNER } from "./leases.ts";

/**
 * One segment's owner, as {@linkcode segmentOwnership} reports it.
 *
 * - `mode`: `"group"` when a group member holds (or last held) its lease,
 *   `"static"` when a static worker last moved it, `"none"` when nobody
 *   holds it (never run, or released).
 * - `ownerId`: the group member holding the lease; `null` otherwise.
 * - `since`: when that member took the lease; `lastHeartbeat`: when it
 *   last renewed it; `leaseExpiresAt`: when it runs out.
 * - `live`: whether the lease is still running by the database's clock. A
 *   lease that has run out belongs to a member that stopped beating (a
 *   crash, a lost connection): the next heartbeat of another member takes
 *   the segment.
 *
 * @example
 * ```ts
 * import type { SegmentOwner } from "@getpup/pupsourcing/projection";
 *
 * const owner = (s: SegmentOwner) => s.live ? s.ownerId : "nobody";
 * ```
 */
export interface SegmentOwner {
  /** The segment, in `0..segments-1`. */
  segment: number;
  /** Who runs it. */
  mode: "group" | "static" | "none";
  /** The group member holding the lease, or `null`. */
  ownerId: string | null;
  /** When the member took the lease. */
  since: Date | null;
  /** When the member last renewed the lease. */
  lastHeartbeat: Date | null;
  /** When the lease runs out. */
  leaseExpiresAt: Date | null;
  /** Whether the lease is running, by the database's clock. */
  live: boolean;
  /** When the segment's checkpoint last moved. */
  checkpointUpdatedAt: Date;
}

/**
 * A live member of a projection's consumer group.
 *
 * @example
 * ```ts
 * import type { GroupMemberInfo } from "@getpup/pupsourcing/projection";
 *
 * const line = (m: GroupMemberInfo) => `${m.memberId}: ${m.segments.join(",")}`;
 * ```
 */
export interface GroupMemberInfo {
  /** The member's id. */
  memberId: string;
  /** When it joined. */
  joinedAt: Date;
  /** Its last heartbeat. */
  lastHeartbeat: Date;
  /** When its membership runs out without another heartbeat. */
  expiresAt: Date;
  /** The segments whose live lease it holds, ascending. */
  segments: number[];
}

/**
 * What {@linkcode segmentOwnership} returns.
 *
 * @example
 * ```ts
 * import type { Ownership } from "@getpup/pupsourcing/projection";
 *
 * const unowned = (o: Ownership) => o.segments.filter((s) => !s.live).length;
 * ```
 */
export interface Ownership {
  /** One entry per segment, ascending; empty before the projection first ran. */
  segments: SegmentOwner[];
  /** The group's live members, by id. */
  members: GroupMemberInfo[];
  /** The database's clock when this was read: leases are judged against it. */
  databaseTime: Date;
}

/**
 * Reads who owns each segment of `projectionName`: the lease holder, since
 * when, its last heartbeat and the lease's expiry, and the group's live
 * members (those that hold nothing yet too). One statement, no lock, no
 * write: safe to poll.
 *
 * @throws {ValidationError} on a bad client, store or name, before any SQL.
 * @throws {SchemaMissingError} when the schema is older than version 5 (run `migrate`).
 *
 * @example Print the group of a projection
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { segmentOwnership } from "@getpup/pupsourcing/projection";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const { segments, members } = await segmentOwnership(sql, new PostgresStore(), "orders");
 * for (const s of segments) console.log(s.segment, s.mode, s.ownerId, s.live);
 * for (const m of members) console.log(m.memberId, m.segments);
 * ```
 */
export async function segmentOwnership(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  store: PostgresStore,
  projectionName: string,
): Promise<Ownership> {
  requireClient("sql", sql);
  if (!(store instanceof PostgresStore)) {
    throw new ValidationError("store", "a PostgresStore", show(store));
  }
  requireName("projectionName", projectionName);
  const tables = store.tables;
  const [row] = await sql`
    select clock_timestamp() as now,
      (select coalesce(json_agg(json_build_object(
        'segment', segment, 'owner', owner_id, 'since', lease_acquired_at,
        'renewed', lease_renewed_at, 'expires', lease_expires_at,
        'live', owner_id <> ${STATIC_OWNER} and lease_expires_at > clock_timestamp(),
        'updated', updated_at) order by segment), '[]')
        from ${table(sql, tables.checkpoints)} where projection_name = ${projectionName}
      ) as segments,
      (select coalesce(json_agg(json_build_object(
        'id', member_id, 'joined', joined_at, 'beat', heartbeat_at, 'expires', expires_at)
        order by member_id), '[]')
        from ${table(sql, tables.groupMembers)}
        where projection_name = ${projectionName} and expires_at > clock_timestamp()
      ) as members
  `.catch((error) => {
    throw missingTable(error, tables);
  });
  const date = (value: unknown) => value === null ? null : new Date(value as string);
  const segments: SegmentOwner[] = parseJson(row.segments).map((s) => {
    const owner = s.owner as string | null;
    const grouped = owner !== null && owner !== STATIC_OWNER;
    return {
      segment: Number(s.segment),
      mode: grouped ? "group" : owner === STATIC_OWNER ? "static" : "none",
      ownerId: grouped ? owner : null,
      since: grouped ? date(s.since) : null,
      lastHeartbeat: grouped ? date(s.renewed) : null,
      leaseExpiresAt: grouped ? date(s.expires) : null,
      live: s.live === true,
      checkpointUpdatedAt: new Date(s.updated as string),
    };
  });
  const members = parseJson(row.members).map((m) => ({
    memberId: String(m.id),
    joinedAt: new Date(m.joined as string),
    lastHeartbeat: new Date(m.beat as string),
    expiresAt: new Date(m.expires as string),
    segments: segments.filter((s) => s.live && s.ownerId === m.id).map((s) => s.segment),
  }));
  return { segments, members, databaseTime: new Date(row.now) };
}

/** A json column: parsed by postgres.js already, or text with custom types. */
function parseJson(value: unknown): Record<string, unknown>[] {
  return (typeof value === "string" ? JSON.parse(value) : value) as Record<string, unknown>[];
}
