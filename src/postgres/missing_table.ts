/**
 * A database without the schema. PostgreSQL answers a statement on a
 * table that does not exist with `relation "aggregate_heads" does not
 * exist` (42P01), which says neither where it looked nor what to do; on
 * one of the store's own tables that error becomes a
 * {@linkcode SchemaMissingError} naming the table, the schema searched and
 * the fix. Called where the store and the processor hand errors back.
 *
 * @module
 */

import { SchemaMissingError } from "../es/errors.ts";
import type { ResolvedTables } from "./tables.ts";

const UNDEFINED_TABLE = /relation "([^"]+)" does not exist/;

/**
 * `error` as a {@linkcode SchemaMissingError} when it is PostgreSQL's
 * undefined_table (42P01) on one of `tables`; any other error (a missing
 * table of a projection's read model, say) as it is.
 */
export function missingTable(error: unknown, tables: ResolvedTables): unknown {
  const e = error as { code?: unknown; message?: unknown };
  if (e?.code !== "42P01" || typeof e.message !== "string") return error;
  const name = UNDEFINED_TABLE.exec(e.message)?.[1];
  const table = [
    tables.events,
    tables.aggregateHeads,
    tables.checkpoints,
    tables.logOffset,
    tables.parkedEvents,
    tables.groupMembers,
  ]
    .find((t) => t === name);
  return table === undefined
    ? error
    : new SchemaMissingError(table, tables.schema, { cause: error });
}
