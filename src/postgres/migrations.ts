/**
 * The schema's versions, in order: the one list that `migrate` applies and
 * `migrate-gen` writes out as files.
 *
 * A schema change is a new entry at the end, with the next version; an
 * entry already released is never edited, because databases have recorded
 * it as applied. Every entry's SQL is idempotent (`IF NOT EXISTS`, `ADD
 * COLUMN IF NOT EXISTS`, ...): a database made before versions were
 * recorded, or from files applied by hand, runs it again when it first
 * meets `migrate`, and must come out unchanged.
 *
 * @module
 */

import { groupMembersSql, initialSchemaSql, logOffsetSql, parkedEventsSql } from "./schema.ts";
import { logFunctionsSql, logVerdictSql } from "./order.ts";
import { snapshotsSql } from "./snapshots.ts";
import type { ResolvedTables } from "./tables.ts";

/** One schema version. */
export interface Migration {
  /** 1, 2, 3, ...: the order of application, recorded once applied. */
  readonly version: number;
  /** A short snake_case name; the file is `0001_<name>.sql`. */
  readonly name: string;
  /** Its idempotent DDL for the given tables. */
  sql(tables: ResolvedTables): string;
}

/** Every schema version, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "event_store", sql: initialSchemaSql },
  { version: 2, name: "log_offset", sql: logOffsetSql },
  { version: 3, name: "snapshots", sql: snapshotsSql },
  { version: 4, name: "parked_events", sql: parkedEventsSql },
  { version: 5, name: "group_members", sql: groupMembersSql },
  { version: 6, name: "log_functions", sql: logFunctionsSql },
  { version: 7, name: "log_verdict", sql: logVerdictSql },
];

/** `0001_event_store`: the version, zero-padded so files sort, and the name. */
export function migrationId(migration: Pick<Migration, "version" | "name">): string {
  return `${String(migration.version).padStart(4, "0")}_${migration.name}`;
}
