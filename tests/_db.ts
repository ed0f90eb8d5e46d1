/**
 * The tests' database: one throwaway server per test file (or
 * `DATABASE_URL`), one fresh database per file, one fresh schema per test
 * that needs an empty log.
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";
import { generateMigration } from "../src/migrate_gen.ts";
import { PostgresStore, type PostgresStoreConfig } from "../src/postgres/mod.ts";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";

/** A database for one test file. */
export interface TestDb {
  /** A default postgres.js client: no type options, as users have. */
  sql: postgres.Sql;
  /** The database's URL, for extra clients and child processes. */
  url: string;
  /** A store on a new schema with the full migration applied. */
  freshStore(config?: PostgresStoreConfig): Promise<PostgresStore>;
  /** Opens another client on the same database; closed by `close()`. */
  client(options?: postgres.Options<Record<string, never>>): postgres.Sql;
  /** Closes every client and stops the server. */
  close(): Promise<void>;
}

let schemaCounter = 0;

/** Starts the server (or uses `DATABASE_URL`) and creates a database. */
export async function setupDatabase(): Promise<TestDb> {
  const server: TestDatabase = await startTestDatabase();
  const url = await server.createDatabase();
  const clients: postgres.Sql[] = [];
  const client = (options: postgres.Options<Record<string, never>> = {}) => {
    const sql = postgres(url, { onnotice: () => {}, ...options });
    clients.push(sql);
    return sql;
  };
  const sql = client();
  return {
    sql,
    url,
    client,
    async freshStore(config: PostgresStoreConfig = {}) {
      const schema = `t${process.pid}_${schemaCounter++}`;
      const store = new PostgresStore({ schema, ...config });
      await sql.unsafe(generateMigration({ schema, ...config }));
      return store;
    },
    async close() {
      await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
      await server.stop();
    },
  };
}

/** Encodes a JSON value as an event payload. */
export function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
