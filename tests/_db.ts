/**
 * The tests' database: one throwaway server per test file (or
 * `DATABASE_URL`), one fresh database per file, one fresh schema per test
 * that needs an empty log.
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";
import type { Event } from "../src/es/mod.ts";
import { migrate, PostgresStore, type PostgresStoreConfig } from "../src/postgres/mod.ts";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";
import { waitUntil, within } from "./_bounds.ts";

/** Row counts of a store's tables and the next global position it would hand out. */
export interface StoreCounts {
  events: number;
  heads: number;
  nextPosition: bigint;
}

/** A database for one test file. */
export interface TestDb {
  /** A default postgres.js client: no type options, as users have. */
  sql: postgres.Sql;
  /** The database's URL, for extra clients and child processes. */
  url: string;
  /** A store on a new schema with the full migration applied. */
  freshStore(config?: PostgresStoreConfig): Promise<PostgresStore>;
  /**
   * Opens another client, on this database or on `url`; closed by `close()`.
   * Its first query opens a new connection, as a user's fresh client would.
   */
  client(options?: postgres.Options<Record<string, never>>, url?: string): postgres.Sql;
  /** Creates another database on the same server and returns its URL. */
  createDatabase(): Promise<string>;
  /** Rows in the store's events and heads tables, and its sequence's next value. */
  counts(store: PostgresStore): Promise<StoreCounts>;
  /** Closes every client, drops the databases on a shared server, stops an embedded one. */
  close(): Promise<void>;
}

let schemaCounter = 0;

/** Starts the server (or uses `DATABASE_URL`) and creates a database. */
export async function setupDatabase(): Promise<TestDb> {
  const server: TestDatabase = await startTestDatabase();
  const url = await server.createDatabase();
  const databases = [url];
  const clients: postgres.Sql[] = [];
  const client = (options: postgres.Options<Record<string, never>> = {}, on = url) => {
    const sql = postgres(on, { onnotice: () => {}, ...options });
    clients.push(sql);
    return sql;
  };
  const sql = client();
  return {
    sql,
    url,
    client,
    async createDatabase() {
      const another = await server.createDatabase();
      databases.push(another);
      return another;
    },
    async freshStore(config: PostgresStoreConfig = {}) {
      const schema = `t${process.pid}_${schemaCounter++}`;
      const store = new PostgresStore({ schema, ...config });
      await migrate(sql, { store });
      return store;
    },
    async counts(store: PostgresStore) {
      const { events, aggregateHeads } = store.tables;
      const [row] = await sql`
        select (select count(*)::int from ${sql(events)}) as events,
          (select count(*)::int from ${sql(aggregateHeads)}) as heads,
          pg_get_serial_sequence(${quoted(events)}, 'global_position') as seq`;
      const [seq] = await sql.unsafe(`select last_value::text, is_called from ${row.seq}`);
      const last = BigInt(seq.last_value);
      return {
        events: row.events,
        heads: row.heads,
        nextPosition: seq.is_called ? last + 1n : last,
      };
    },
    async close() {
      await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
      // A shared DATABASE_URL server keeps nothing of the tests.
      if (!server.embedded) await Promise.all(databases.map((d) => server.dropDatabase(d)));
      await server.stop();
    },
  };
}

function quoted(name: string): string {
  return name.split(".").map((part) => `"${part}"`).join(".");
}

/** Encodes a JSON value as an event payload. */
export function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** An event of `Order` `aggregateId`; `fields` override any default. */
export function event(aggregateId: string, fields: Partial<Event> = {}): Event {
  return {
    aggregateType: "Order",
    aggregateId,
    eventType: "OrderNoted",
    payload: json({ aggregateId }),
    ...fields,
  };
}

/** `count` events of one aggregate, with event types `E1`, `E2`, ... */
export function events(aggregateId: string, count: number, fields: Partial<Event> = {}): Event[] {
  return Array.from(
    { length: count },
    (_, i) => event(aggregateId, { eventType: `E${i + 1}`, ...fields }),
  );
}

/** The backend pid of a client opened with `max: 1`. */
export async function backendPid(sql: postgres.Sql): Promise<number> {
  const [{ pid }] = await sql`select pg_backend_pid() as pid`;
  return pid;
}

/**
 * Resolves once every backend in `pids` waits on a lock: the way to know
 * that racing statements have really reached the database and queued up.
 */
export async function waitUntilBlocked(
  sql: postgres.Sql,
  pids: readonly number[],
  ms = 10_000,
): Promise<void> {
  await waitUntil(
    `backends ${pids.join(", ")} to wait on a lock`,
    async () => {
      const [{ blocked }] = await sql`
        select count(*)::int as blocked from pg_stat_activity
        where pid in ${sql([...pids])} and wait_event_type = 'Lock'`;
      return blocked === pids.length;
    },
    ms,
    5,
  );
}

/** A promise and the function that resolves it, to hold a transaction open. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/** A transaction held open on its own connection until `commit()`. */
export interface HeldTransaction {
  /** Runs statements inside the transaction. */
  tx: postgres.TransactionSql;
  /** Ends the transaction with a commit and waits for it. */
  commit(): Promise<void>;
}

/** Opens a transaction on `sql` (use a `max: 1` client) and returns once it is open. */
export async function holdTransaction(sql: postgres.Sql): Promise<HeldTransaction> {
  const ready = gate();
  const done = gate();
  let tx!: postgres.TransactionSql;
  const transaction = sql.begin(async (open) => {
    tx = open;
    ready.open();
    await done.promise;
  });
  await within(Promise.race([ready.promise, transaction]), 10_000, "a transaction to open");
  return {
    tx,
    async commit() {
      done.open();
      await within(transaction, 10_000, "a held transaction to commit");
    },
  };
}

/**
 * Stores one event filed a million order keys above any this cluster has
 * issued, as history restored from another cluster is: the log's regression
 * guard refuses it until a rebase. Returns its key.
 */
export async function insertForeignEvent(
  sql: postgres.Sql,
  store: PostgresStore,
  aggregateId = "moved",
): Promise<bigint> {
  const [{ key }] = await sql`
    insert into ${sql(store.tables.events)} (transaction_id, aggregate_type, aggregate_id,
      aggregate_version, aggregate_id_hash, event_id, event_type, payload)
    values ((pg_current_xact_id()::text::int8 + 1000000)::text::xid8, 'Order', ${aggregateId}, 1, 0,
      gen_random_uuid(), 'E', '\\x00'::bytea)
    returning transaction_id::text as key`;
  return BigInt(key);
}
