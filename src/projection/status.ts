/**
 * `projectionStatus`: where each projection is, how far behind the log,
 * what it parked, and who holds its segments; read from the checkpoint and
 * parked-events tables, without touching a worker.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Cursor } from "../es/event.ts";
import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { requireName, show } from "../es/validate.ts";
import { maxCursor, minCursor } from "../es/cursor.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import {
  arrayLiteral,
  type Db,
  type LagScope,
  missingTable,
  type SegmentLag,
  segmentLag,
  table,
} from "../postgres/internal.ts";
import {
  type GroupMemberInfo,
  type Ownership,
  type SegmentOwner,
  segmentOwnership,
} from "./ownership.ts";
import { type Projection, validateProjection } from "./projection.ts";

/**
 * One segment of a projection, in {@linkcode ProjectionStatus.segmentDetails}.
 *
 * @example
 * ```ts
 * import type { SegmentStatus } from "@getpup/pupsourcing/projection";
 *
 * const behind = (s: SegmentStatus) => s.lagEvents > 0n;
 * ```
 */
export interface SegmentStatus {
  /** The segment number, in `0..segments-1`. */
  segment: number;
  /** Its checkpoint: the cursor after the last event it took. */
  checkpoint: Cursor;
  /** When the checkpoint last moved. */
  updatedAt: Date;
  /** Committed events of this segment not applied yet. */
  lagEvents: bigint;
  /** Age in seconds of the oldest of them (0 when none). */
  lagSeconds: number;
  /**
   * Who runs it: `"group"` when a consumer group's member holds (or last
   * held) its lease, `"static"` when a static worker last moved it,
   * `"none"` when nobody holds it (see `segmentOwnership`).
   */
  mode: SegmentOwner["mode"];
  /** The group member holding the lease; `null` when none. */
  ownerId: string | null;
  /** When that member took the lease. */
  since: Date | null;
  /** When it last renewed it. */
  lastHeartbeat: Date | null;
  /** When the lease runs out; `null` when none. */
  leaseExpiresAt: Date | null;
  /** Whether the lease is running, by the database's clock. */
  live: boolean;
}

/**
 * Where a projection is, as {@linkcode projectionStatus} reports it.
 *
 * @example Alert on lag
 * ```ts
 * import type { ProjectionStatus } from "@getpup/pupsourcing/projection";
 *
 * const late = (s: ProjectionStatus) => s.lagSeconds > 60 || s.parked > 0;
 * ```
 */
export interface ProjectionStatus {
  /** The projection's name. */
  name: string;
  /** Its fixed segment count. */
  segments: number;
  /** The checkpoint furthest behind (the slowest segment). */
  oldestCheckpoint: Cursor;
  /** The checkpoint furthest ahead. */
  newestCheckpoint: Cursor;
  /** When a checkpoint last moved. */
  updatedAt: Date;
  /**
   * Committed events not applied yet, over all segments, also those waiting
   * behind the safe horizon. Every event of the segments counts unless the
   * projection itself (its scope) was given.
   */
  lagEvents: bigint;
  /** Age in seconds of the oldest event not applied yet (0 when caught up). */
  lagSeconds: number;
  /** Parked events still waiting for a replay or a discard. */
  parked: number;
  /**
   * The last handler failure recorded on an event still parked, or
   * skipped (not one since replayed or discarded), or `null`.
   */
  lastError: { error: string; at: Date; globalPosition: bigint } | null;
  /** Every segment, in order. */
  segmentDetails: SegmentStatus[];
  /** The live members of its consumer group (none for static workers). */
  members: GroupMemberInfo[];
}

/**
 * Options of {@linkcode projectionStatus}.
 *
 * @example
 * ```ts
 * import type { StatusOptions } from "@getpup/pupsourcing/projection";
 *
 * const options: StatusOptions = { projections: ["user_emails"] };
 * ```
 */
export interface StatusOptions {
  /**
   * Only these projections, by name or as projections (whose scope then
   * narrows the lag to the events they take); default: every projection
   * with checkpoints.
   */
  projections?: readonly (string | Projection)[];
}

/**
 * Reports each projection's checkpoints, lag (events and seconds), parked
 * events, last error and segment owners, sorted by name. Reads only; no
 * worker is disturbed.
 *
 * @throws {ValidationError} on bad options, or a name with no checkpoints
 * (a projection that never ran, or a typo: the message lists the known
 * names).
 *
 * @example
 * ```ts ignore
 * import { projectionStatus } from "@getpup/pupsourcing/projection";
 *
 * for (const s of await projectionStatus(sql, store)) {
 *   console.log(s.name, s.lagEvents, `${s.lagSeconds}s`, s.parked);
 * }
 * ```
 */
export async function projectionStatus(
  db: Db,
  store: PostgresStore,
  options?: StatusOptions,
): Promise<ProjectionStatus[]> {
  const { projections } = checkOptions("options", options, ["projections"]);
  const scopes = new Map<string, LagScope>();
  let names: string[] | undefined;
  if (projections !== undefined) {
    if (!Array.isArray(projections) || projections.length === 0) {
      throw new ValidationError(
        "options.projections",
        "a non-empty array of names or projections (omit it for every projection)",
        show(projections),
      );
    }
    names = projections.map((p, i) => {
      if (typeof p === "string") return requireName(`options.projections[${i}]`, p);
      validateProjection(p);
      scopes.set(p.name, { aggregateTypes: p.aggregateTypes, eventTypes: p.eventTypes });
      return p.name;
    });
  }
  const { tables } = store;
  try {
    const rows = await segmentLag(db, tables, names, scopes);
    if (names !== undefined) await requireKnown(db, store, names, rows);
    const parkedTable = table(db, tables.parkedEvents);
    const only = names === undefined
      ? db``
      : db`and projection_name = any(${arrayLiteral(names)}::text[])`;
    const parked = await db`
      with waiting as (
        select projection_name, count(*) filter (where status = 'parked')::int as waiting
        from ${parkedTable} where true ${only} group by projection_name
      ), last as (
        select distinct on (projection_name) projection_name, error, updated_at, global_position
        from ${parkedTable}
        where error is not null and status in ('parked', 'skipped') ${only}
        order by projection_name, updated_at desc
      )
      select w.projection_name, w.waiting, l.error, l.updated_at, l.global_position
      from waiting w left join last l using (projection_name)
    `;
    const parkedBy = new Map(parked.map((row) => [row.projection_name as string, row]));
    // Rows come sorted by name: one group per projection.
    const byName = new Map<string, SegmentLag[]>();
    for (const row of rows) byName.set(row.projection, [...byName.get(row.projection) ?? [], row]);
    const owners = new Map<string, Ownership>();
    for (const name of byName.keys()) {
      // deno-lint-ignore no-explicit-any -- segmentOwnership takes any client
      owners.set(name, await segmentOwnership(db as Sql<any>, store, name));
    }
    return [...byName].map(([name, segments]) =>
      summary(name, segments, parkedBy.get(name), owners.get(name)!)
    );
  } catch (error) {
    throw missingTable(error, tables);
  }
}

/** Refuses names that have no checkpoints, listing those that do. */
async function requireKnown(
  db: Db,
  store: PostgresStore,
  names: readonly string[],
  rows: readonly SegmentLag[],
): Promise<void> {
  const found = new Set(rows.map((row) => row.projection));
  const missing = names.find((name) => !found.has(name));
  if (missing === undefined) return;
  throw new ValidationError(
    "projection",
    `the name of a projection that has run (${await knownList(db, store)})`,
    JSON.stringify(missing),
  );
}

/** The names with checkpoints, for a message: `known: a, b` or `none has run yet`. */
export async function knownList(db: Db, store: PostgresStore): Promise<string> {
  const known = await db`
    select distinct projection_name from ${table(db, store.tables.checkpoints)} order by 1
  `.values();
  return known.length === 0
    ? "none has run yet"
    : `known: ${known.map(([name]) => name).join(", ")}`;
}

function summary(
  name: string,
  segments: readonly SegmentLag[],
  parked: Record<string, unknown> | undefined,
  ownership: Ownership,
): ProjectionStatus {
  const owner = new Map(ownership.segments.map((s) => [s.segment, s]));
  const cursors = segments.map((s) => s.cursor);
  return {
    name,
    segments: segments[0].segmentCount,
    oldestCheckpoint: minCursor(cursors),
    newestCheckpoint: cursors.reduce(maxCursor),
    updatedAt: new Date(Math.max(...segments.map((s) => s.updatedAt.getTime()))),
    lagEvents: segments.reduce((n, s) => n + s.lagEvents, 0n),
    lagSeconds: Math.max(...segments.map((s) => s.ageSeconds)),
    parked: (parked?.waiting as number | undefined) ?? 0,
    lastError: parked?.error
      ? {
        error: parked.error as string,
        at: new Date(parked.updated_at as Date),
        globalPosition: BigInt(parked.global_position as string),
      }
      : null,
    segmentDetails: segments.map((s) => ({
      segment: s.segment,
      checkpoint: s.cursor,
      updatedAt: s.updatedAt,
      lagEvents: s.lagEvents,
      lagSeconds: s.ageSeconds,
      mode: owner.get(s.segment)?.mode ?? "none",
      ownerId: owner.get(s.segment)?.ownerId ?? null,
      since: owner.get(s.segment)?.since ?? null,
      lastHeartbeat: owner.get(s.segment)?.lastHeartbeat ?? null,
      leaseExpiresAt: owner.get(s.segment)?.leaseExpiresAt ?? null,
      live: owner.get(s.segment)?.live ?? false,
    })),
    members: ownership.members,
  };
}
