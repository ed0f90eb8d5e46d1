/**
 * Table names: configurable, validated and quoted. A caller's name never
 * reaches SQL text unless it is a plain identifier, and then only quoted.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";

/**
 * The tables the store and the projections use, and the NOTIFY channel.
 *
 * @example Keep everything in its own schema with prefixed tables
 * ```ts
 * import type { TableNames } from "@getpup/pupsourcing/postgres";
 *
 * const names: TableNames = { schema: "es", eventsTable: "billing_events" };
 * ```
 */
export interface TableNames {
  /** The schema of every table; default: unqualified (the `search_path`). */
  schema?: string;
  /** Default `events`. */
  eventsTable?: string;
  /** Default `aggregate_heads`. */
  aggregateHeadsTable?: string;
  /** Default `projection_checkpoints`. */
  checkpointsTable?: string;
  /** The schema versions `migrate` has applied; default `pupsourcing_migrations`. */
  migrationsTable?: string;
  /**
   * The log's ordering offset (one row, set by `rebaseLog` after a move
   * into a new cluster); default `pupsourcing_log_offset`.
   */
  logOffsetTable?: string;
  /** Aggregates' snapshots (`PostgresSnapshotStore`); default `snapshots`. */
  snapshotsTable?: string;
  /** Events a projection parked or skipped after its handler failed; default `projection_parked_events`. */
  parkedEventsTable?: string;
  /** The live members of projections' consumer groups; default `projection_group_members`. */
  groupMembersTable?: string;
}

/**
 * Validated names. Each table is qualified with its schema (`es.events`)
 * when one is set; pass it to postgres.js's `sql(name)` or to
 * {@linkcode quote}, which both quote every part.
 *
 * @example
 * ```ts
 * import { PostgresStore } from "@getpup/pupsourcing";
 *
 * const store = new PostgresStore({ schema: "es" });
 * console.log(store.tables.events); // "es.events"
 * ```
 */
export interface ResolvedTables {
  /** The schema, or `undefined` when tables are unqualified. */
  schema: string | undefined;
  /** The events table. */
  events: string;
  /** The aggregate heads table. */
  aggregateHeads: string;
  /** The projection checkpoints table. */
  checkpoints: string;
  /** The table of applied schema versions. */
  migrations: string;
  /** The one-row table of the log's ordering offset. */
  logOffset: string;
  /** The snapshots table. */
  snapshots: string;
  /** The projections' parked (and skipped) events. */
  parkedEvents: string;
  /** The consumer groups' members and their heartbeats. */
  groupMembers: string;
  /**
   * The function that returns the log's ordering offset as a constant
   * (schema version 6), named after the offset table: `..._value`.
   */
  logOffsetFunction: string;
  /**
   * The function that looks for an order key this cluster has not issued
   * (schema version 6), named after the events table: `..._foreign_key`.
   */
  logLookFunction: string;
  /**
   * The function that gives the regression guard's verdict on the log and
   * a cursor (schema version 7), named after the events table: `..._log_verdict`.
   */
  logVerdictFunction: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** PostgreSQL truncates identifiers at 63 bytes; refuse rather than truncate. */
const MAX_IDENTIFIER = 63;

/**
 * Throws unless `name` is a plain SQL identifier (letters, digits and `_`,
 * not starting with a digit, at most 63 characters).
 */
export function validateIdentifier(field: string, name: unknown): string {
  if (typeof name !== "string" || !IDENTIFIER.test(name) || name.length > MAX_IDENTIFIER) {
    throw new ValidationError(
      field,
      "a plain identifier: letters, digits and _, not starting with a digit, at most 63 characters",
      show(name),
    );
  }
  return name;
}

/** Double-quotes each dot-separated part of a validated name. */
export function quote(name: string): string {
  return name.split(".").map((part) => `"${part}"`).join(".");
}

/** The unqualified part of a validated name, for deriving index names. */
function baseName(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}

/**
 * The name of an index or constraint derived from a table, so the store can
 * recognize it in errors. The table's part is shortened to keep the whole
 * suffix within PostgreSQL's 63 characters: cutting the suffix instead
 * would give a long table's constraints and index one and the same name.
 */
export function derivedName(table: string, suffix: string): string {
  return `${baseName(table).slice(0, MAX_IDENTIFIER - suffix.length - 1)}_${suffix}`;
}

/** Validates every name and qualifies the tables with the schema. */
export function resolveTables(names: TableNames = {}): ResolvedTables {
  const schema = names.schema === undefined
    ? undefined
    : validateIdentifier("schema", names.schema);
  const qualified = (name: string) => schema ? `${schema}.${name}` : name;
  const table = (field: string, value: string | undefined, fallback: string) =>
    qualified(validateIdentifier(field, value ?? fallback));
  const events = table("eventsTable", names.eventsTable, "events");
  const logOffset = table("logOffsetTable", names.logOffsetTable, "pupsourcing_log_offset");
  return {
    schema,
    events,
    aggregateHeads: table("aggregateHeadsTable", names.aggregateHeadsTable, "aggregate_heads"),
    checkpoints: table("checkpointsTable", names.checkpointsTable, "projection_checkpoints"),
    migrations: table("migrationsTable", names.migrationsTable, "pupsourcing_migrations"),
    logOffset,
    snapshots: table("snapshotsTable", names.snapshotsTable, "snapshots"),
    parkedEvents: table(
      "parkedEventsTable",
      names.parkedEventsTable,
      "projection_parked_events",
    ),
    groupMembers: table(
      "groupMembersTable",
      names.groupMembersTable,
      "projection_group_members",
    ),
    logOffsetFunction: qualified(derivedName(logOffset, "value")),
    logLookFunction: qualified(derivedName(events, "foreign_key")),
    logVerdictFunction: qualified(derivedName(events, "log_verdict")),
  };
}
