/**
 * What the store runs its queries on.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { ReservedSql, Sql, TransactionSql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/show.ts";
import { quote } from "./tables.ts";

/**
 * A postgres.js client: the `sql` from `postgres(...)`, the `tx` that
 * `sql.begin` hands its callback, or a connection from `sql.reserve()`.
 * Statements run on a `tx` join the caller's transaction; on a plain `sql`
 * or a reserved connection each call is atomic on its own.
 *
 * @example
 * ```ts
 * import postgres from "postgres";
 * import type { Db } from "@getpup/pupsourcing/postgres";
 *
 * const sql: Db = postgres();
 * ```
 */
// deno-lint-ignore no-explicit-any -- accepts clients configured with any custom type map
export type Db = Sql<any> | TransactionSql<any> | ReservedSql<any>;

/**
 * Throws unless `db` is a postgres.js client. With `ownTransactions` (why
 * it needs them), it must be one that opens its own: the `sql` of
 * `postgres(url)`, not the `tx` of `sql.begin` or a reserved connection,
 * which have no `begin()`.
 *
 * @throws {ValidationError} naming `field`.
 */
export function requireClient(field: string, db: unknown, ownTransactions?: string): void {
  if (typeof db === "function" && typeof (db as Db).unsafe === "function") {
    if (ownTransactions === undefined || typeof (db as Sql).begin === "function") return;
    throw new ValidationError(
      field,
      `a postgres.js client from postgres(url): ${ownTransactions}`,
      "a client without begin(): the tx of sql.begin, or a reserved connection",
    );
  }
  throw new ValidationError(
    field,
    ownTransactions === undefined
      ? "a postgres.js client: the sql of postgres(url), a tx of sql.begin, or sql.reserve()"
      : `a postgres.js client from postgres(url): ${ownTransactions}`,
    show(db),
  );
}

/** Turns an `int8`/`xid8` column (a string, or a bigint with custom types) into a bigint. */
export function toBigInt(value: unknown): bigint {
  return BigInt(value as string | bigint);
}

/**
 * A table as SQL text, quoted here: a name passed as `db(name)` goes
 * through the client's column transform, and `postgres.camel` would turn
 * `OrderEvents` into `_order_events`.
 */
export function table(db: Db, name: string) {
  return db.unsafe(quote(name));
}

/**
 * A PostgreSQL array literal, sent as text and cast in SQL
 * (`${arrayLiteral(ids)}::uuid[]`). postgres.js's own array parameters
 * need the array types it fetches on connect: a client's first query is
 * built before they arrive, and with `fetch_types: false` they never do.
 */
export function arrayLiteral(values: readonly (string | null)[]): string {
  let literal = "{";
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (i > 0) literal += ",";
    literal += value === null ? "NULL" : `"${value.replace(ARRAY_ESCAPE, "\\$&")}"`;
  }
  return literal + "}";
}

const ARRAY_ESCAPE = /[\\"]/g;

/** `bytes` in bytea's hex input format. */
export function byteaHex(bytes: Uint8Array): string {
  return "\\x" + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
