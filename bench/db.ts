/**
 * The benchmark's database: a server with PostgreSQL's durability defaults,
 * clients, fresh schemas and what the run was measured on.
 *
 * @module
 */

import { connect, type Socket } from "node:net";
import postgres from "postgres";
import { migrate, PostgresStore, type PostgresStoreConfig } from "../src/postgres/mod.ts";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";
import { watchServer } from "./cpu.ts";

/** Settings that undo the test server's speed-over-durability defaults. */
export const DURABLE_SETTINGS: Record<string, string> = {
  fsync: "on",
  full_page_writes: "on",
  synchronous_commit: "on",
  max_connections: "100",
};

/** The server settings the report records. */
export const RECORDED_SETTINGS = [
  "server_version",
  "synchronous_commit",
  "fsync",
  "full_page_writes",
  "shared_buffers",
  "wal_level",
  "max_wal_size",
] as const;

/** A running server, a database on it, and what it is. */
export interface BenchDb {
  url: string;
  server: TestDatabase;
  settings: Record<string, string>;
  /**
   * A new client with all `max` connections open (and postgres.js's array
   * types fetched); `noDelay` sets TCP_NODELAY on its sockets.
   */
  client(max: number, options?: { noDelay?: boolean }): Promise<postgres.Sql>;
  /** A store on a new schema with the migration applied. */
  freshStore(config?: Omit<PostgresStoreConfig, "schema">): Promise<PostgresStore>;
  /** Empties a store's events and heads (TRUNCATE): young tables again. */
  empty(store: PostgresStore): Promise<void>;
  /**
   * Ends the clients a workload opened: the run's connections would
   * otherwise add up past the server's `max_connections`.
   */
  releaseClients(): Promise<void>;
  close(): Promise<void>;
}

/** A postgres.js `socket` option that turns Nagle's algorithm off. */
export function noDelaySocket(options: { host: string[]; port: number[] }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(options.port[0], options.host[0]);
    socket.setNoDelay(true);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

let schemas = 0;

/** Starts the server (or uses `DATABASE_URL`) and creates a database for the run. */
export async function openBenchDb(): Promise<BenchDb> {
  const server = await startTestDatabase({ settings: DURABLE_SETTINGS });
  const url = await server.createDatabase();
  const clients: postgres.Sql[] = [];
  const client = async (max: number, options: { noDelay?: boolean } = {}) => {
    const sql = postgres(url, {
      max,
      onnotice: () => {},
      ...(options.noDelay ? { socket: noDelaySocket } : {}),
    });
    clients.push(sql);
    await Promise.all(Array.from({ length: max }, () => sql`select pg_sleep(0.02)`));
    return sql;
  };
  const admin = await client(1);
  const settings: Record<string, string> = {};
  for (const name of RECORDED_SETTINGS) {
    const [row] = await admin`select current_setting(${name}) as value`;
    settings[name] = row.value as string;
  }
  const [{ pid }] = await admin`select pg_backend_pid() as pid`;
  watchServer(pid as number);
  return {
    url,
    server,
    settings,
    client,
    async freshStore(config = {}) {
      const store = new PostgresStore({ schema: `bench_${schemas++}`, ...config });
      await migrate(admin, { store });
      return store;
    },
    async empty(store) {
      const { events, aggregateHeads } = store.tables;
      await admin`truncate ${admin(events)}, ${admin(aggregateHeads)}`;
    },
    async releaseClients() {
      const opened = clients.splice(1);
      await Promise.all(opened.map((c) => c.end({ timeout: 5 })));
    },
    async close() {
      await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
      await server.stop();
    },
  };
}
