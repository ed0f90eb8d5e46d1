/**
 * The schema, defined once: the tables' columns and the DDL that creates
 * them. The migrations, the reads and the appends all take their column
 * names from here.
 *
 * @module
 */

import type { ResolvedTables } from "./tables.ts";
import { derivedName, quote } from "./tables.ts";

/** A column of the events table: its name, its type and the rest of its definition. */
export interface EventColumn {
  /** The column's name. */
  name: string;
  /** Its SQL type, as parameters are cast to. */
  type: string;
  /** Constraints and default, after the type in the DDL. */
  rest: string;
}

/** The events table's columns, in table order. */
export const EVENT_TABLE_COLUMNS: readonly EventColumn[] = [
  { name: "global_position", type: "bigserial", rest: "PRIMARY KEY" },
  { name: "transaction_id", type: "xid8", rest: "NOT NULL DEFAULT pg_current_xact_id()" },
  { name: "aggregate_type", type: "text", rest: "NOT NULL" },
  { name: "aggregate_id", type: "text", rest: "NOT NULL" },
  { name: "aggregate_version", type: "bigint", rest: "NOT NULL" },
  { name: "aggregate_id_hash", type: "bigint", rest: "NOT NULL" },
  { name: "event_id", type: "uuid", rest: "NOT NULL" },
  { name: "event_type", type: "text", rest: "NOT NULL" },
  { name: "event_version", type: "integer", rest: "NOT NULL DEFAULT 1" },
  { name: "payload", type: "bytea", rest: "NOT NULL" },
  { name: "trace_id", type: "text", rest: "" },
  { name: "correlation_id", type: "text", rest: "" },
  { name: "causation_id", type: "text", rest: "" },
  { name: "metadata", type: "jsonb", rest: "" },
  { name: "created_at", type: "timestamptz", rest: "NOT NULL DEFAULT now()" },
];

/** `CREATE SCHEMA IF NOT EXISTS` for the tables' schema, or nothing without one. */
function createSchemaSql(t: ResolvedTables): string {
  return t.schema ? `CREATE SCHEMA IF NOT EXISTS ${quote(t.schema)};\n\n` : "";
}

/**
 * The table where `migrate` records each schema version it applied: made
 * before the first version runs, so that version can be recorded in its
 * own transaction. It is not a migration itself: files applied by hand do
 * without it.
 */
export function migrationsTableSql(t: ResolvedTables): string {
  return `${createSchemaSql(t)}CREATE TABLE IF NOT EXISTS ${quote(t.migrations)} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
`;
}

/**
 * The DDL of the first schema version: the events table, the aggregate
 * heads and the projection checkpoints, every statement idempotent.
 */
export function initialSchemaSql(t: ResolvedTables): string {
  const schema = createSchemaSql(t);
  const columns = EVENT_TABLE_COLUMNS.map((c) =>
    `    ${c.name} ${c.type}${c.rest ? ` ${c.rest}` : ""},`
  ).join("\n");
  return `${schema}-- The event log. The global log is read in (transaction_id, global_position)
-- order, and only below the oldest running transaction, so that an event
-- whose transaction commits late is never skipped.
CREATE TABLE IF NOT EXISTS ${quote(t.events)} (
${columns}
    CONSTRAINT ${quote(derivedName(t.events, "event_id_key"))} UNIQUE (event_id),
    CONSTRAINT ${quote(derivedName(t.events, "aggregate_version_key"))}
        UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

CREATE INDEX IF NOT EXISTS ${quote(derivedName(t.events, "log_idx"))}
    ON ${quote(t.events)} (transaction_id, global_position);

-- The current version of every aggregate: one row read per append. Its
-- last_transaction_id is the log order key of the aggregate's newest event:
-- an append never files an event below it, so a transaction that got its
-- id early cannot put a later version before an earlier one in the log.
CREATE TABLE IF NOT EXISTS ${quote(t.aggregateHeads)} (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL,
    last_transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Where each projection segment has got to: a (transaction_id,
-- global_position) pair, never a position alone, plus the lease of the
-- worker that owns the segment.
CREATE TABLE IF NOT EXISTS ${quote(t.checkpoints)} (
    projection_name text NOT NULL,
    segment integer NOT NULL,
    segment_count integer NOT NULL,
    transaction_id xid8 NOT NULL DEFAULT '0',
    global_position bigint NOT NULL DEFAULT 0,
    owner_id text,
    lease_expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, segment)
);
`;
}

/**
 * The DDL of schema version 2: the log's ordering offset, one row.
 *
 * The log is ordered by an order key, the transaction id plus this
 * offset: appends file events under `pg_current_xact_id() + offset` and
 * readers read below `pg_snapshot_xmin(pg_current_snapshot()) + offset`.
 * It stays 0 until the database is moved into a cluster whose transaction
 * ids are lower than the history's (a dump and restore, a logical
 * replication move); `rebaseLog` then sets it, once, so that new events
 * follow the history and every checkpoint stays valid.
 */
export function logOffsetSql(t: ResolvedTables): string {
  return `${
    createSchemaSql(t)
  }-- The log's ordering offset: an event's order key is its transaction id
-- plus this offset. 0 until rebaseLog sets it after a move into a new
-- cluster, whose transaction ids start lower than the history's.
CREATE TABLE IF NOT EXISTS ${quote(t.logOffset)} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    transaction_id_offset bigint NOT NULL DEFAULT 0,
    rebased_at timestamptz
);

INSERT INTO ${quote(t.logOffset)} (singleton) VALUES (true) ON CONFLICT DO NOTHING;
`;
}

/**
 * The DDL of schema version 4: the events projections parked or skipped
 * after their handler failed. A row is keyed by the projection and the
 * event's global position, and holds the event's identity (the event
 * itself stays in the log, read by position on replay), why it is there
 * (`failed`, or `held` behind an earlier parked event of its aggregate),
 * the last error and the attempts. Rows are never deleted: `resolved` and
 * `discarded` ones stay for audit. The partial index finds an aggregate's
 * open rows, which a batch checks to keep the aggregate's order.
 */
export function parkedEventsSql(t: ResolvedTables): string {
  const parked = quote(t.parkedEvents);
  return `${
    createSchemaSql(t)
  }-- Events a projection's handler failed on (or that wait behind one of the
-- same aggregate), moved here in the transaction that moved the checkpoint
-- past them.
CREATE TABLE IF NOT EXISTS ${parked} (
    projection_name text NOT NULL,
    global_position bigint NOT NULL,
    transaction_id xid8 NOT NULL,
    event_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL,
    event_type text NOT NULL,
    status text NOT NULL,
    reason text NOT NULL,
    error text,
    attempts integer NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, global_position),
    CONSTRAINT ${quote(derivedName(t.parkedEvents, "status_check"))}
        CHECK (status IN ('parked', 'skipped', 'resolved', 'discarded')),
    CONSTRAINT ${quote(derivedName(t.parkedEvents, "reason_check"))}
        CHECK (reason IN ('failed', 'held'))
);

CREATE INDEX IF NOT EXISTS ${quote(derivedName(t.parkedEvents, "open_idx"))}
    ON ${parked} (projection_name, aggregate_type, aggregate_id, global_position)
    WHERE status = 'parked';
`;
}

/**
 * The DDL of schema version 5: consumer groups. The members table holds
 * one row per live member of a projection's group (its heartbeat and the
 * expiry of its membership, both by the database's clock), so a member
 * that owns no segment yet still counts when the others compute their
 * share. The checkpoints gain when their lease was taken and last
 * renewed, for the ownership report.
 */
export function groupMembersSql(t: ResolvedTables): string {
  return `${
    createSchemaSql(t)
  }-- The members of each projection's consumer group: a member heartbeats its
-- row, and counts as live while expires_at is ahead of the database's clock.
CREATE TABLE IF NOT EXISTS ${quote(t.groupMembers)} (
    projection_name text NOT NULL,
    member_id text NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (projection_name, member_id)
);

-- When the lease of a segment was taken, and last renewed.
ALTER TABLE ${quote(t.checkpoints)}
    ADD COLUMN IF NOT EXISTS lease_acquired_at timestamptz,
    ADD COLUMN IF NOT EXISTS lease_renewed_at timestamptz;
`;
}
