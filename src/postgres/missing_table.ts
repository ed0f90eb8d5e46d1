/**
 * A database without the schema. PostgreSQL answers a statement on a
 * table that does not exist with `relation "aggregate_heads" does not
 * exist` (42P01), which says neither where it looked nor what to do; on
 * one of the store's own tables that error becomes a
 * {@linkcode SchemaMissingError} naming the table, the schema searched and
 * the fix. The same for one of the log's functions (undefined_function,
 * 42883): a database migrated before schema version 6 or 7; and for the
 * store's schema itself (invalid_schema_name, 3F000), which PostgreSQL
 * reports first when a statement calls a function in it. Called where the
 * store and the processor hand errors back.
 *
 * @module
 */

import { SchemaMissingError } from "../es/errors.ts";
import type { ResolvedTables } from "./tables.ts";

const UNDEFINED_TABLE = /relation "([^"]+)" does not exist/;
const UNDEFINED_FUNCTION = /function ([^(\s]+)\(/;

/**
 * `error` as a {@linkcode SchemaMissingError} when it is PostgreSQL's
 * undefined_table (42P01) on one of `tables`; any other error (a missing
 * table of a projection's read model, say) as it is.
 */
export function missingTable(error: unknown, tables: ResolvedTables): unknown {
  const e = error as { code?: unknown; message?: unknown };
  if (typeof e?.message !== "string") return error;
  // A function's schema is looked up first: a missing schema is all of it missing.
  if (e.code === "3F000" && e.message === `schema "${tables.schema}" does not exist`) {
    return new SchemaMissingError(tables.events, tables.schema, { cause: error });
  }
  if (e.code === "42883") {
    const name = UNDEFINED_FUNCTION.exec(e.message)?.[1];
    const missing = [tables.logOffsetFunction, tables.logLookFunction, tables.logVerdictFunction]
      .find((f) => f === name);
    return missing === undefined
      ? error
      : new SchemaMissingError(`${missing}()`, tables.schema, { cause: error });
  }
  if (e.code !== "42P01") return error;
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
