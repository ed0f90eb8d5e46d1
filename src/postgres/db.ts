/**
 * What the store runs its queries on.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";

/**
 * A postgres.js client: the `sql` from `postgres(...)`, or the `tx` that
 * `sql.begin` hands its callback. Statements run on a `tx` join the
 * caller's transaction; on a plain `sql` each call is atomic on its own.
 *
 * @example
 * ```ts ignore
 * import postgres from "postgres";
 * import type { Db } from "@getpup/pupsourcing/postgres";
 *
 * const sql: Db = postgres();
 * ```
 */
// deno-lint-ignore no-explicit-any -- accepts clients configured with any custom type map
export type Db = Sql<any> | TransactionSql<any>;

/** Turns an `int8`/`xid8` column (a string, or a bigint with custom types) into a bigint. */
export function toBigInt(value: unknown): bigint {
  return BigInt(value as string | bigint);
}

/** PostgreSQL's OIDs for the element types of the array parameters. */
export const OID = {
  text: 25,
  bytea: 17,
  int4: 23,
  uuid: 2950,
  jsonb: 3802,
  timestamptz: 1184,
} as const;
