/**
 * A tour of the event store: a throwaway PostgreSQL, the schema, appends to
 * two aggregates, a stream read back, the global log page by page, and an
 * optimistic concurrency conflict.
 *
 * ```sh
 * deno task demo                                   # starts its own PostgreSQL
 * DATABASE_URL=postgres://... deno task demo       # uses yours (a new database, dropped after)
 * ```
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";
import {
  type Cursor,
  type Event,
  migrate,
  OptimisticConcurrencyError,
  type PersistedEvent,
  PostgresStore,
  START,
} from "../mod.ts";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function userEvent(eventType: string, body: unknown): Event {
  return {
    aggregateType: "User",
    aggregateId: "user-1",
    eventType,
    payload: encoder.encode(JSON.stringify(body)),
  };
}

function orderEvent(eventType: string, body: unknown): Event {
  return {
    aggregateType: "Order",
    aggregateId: "order-1",
    eventType,
    payload: encoder.encode(JSON.stringify(body)),
  };
}

function describe(e: PersistedEvent): string {
  return `#${e.globalPosition} ${e.aggregateType} ${e.aggregateId} v${e.aggregateVersion} ` +
    `${e.eventType} ${decoder.decode(e.payload)}`;
}

function step(title: string): void {
  console.log(`\n== ${title}`);
}

step("1. Start PostgreSQL");
let server: TestDatabase;
let url: string;
try {
  server = await startTestDatabase();
  url = await server.createDatabase();
} catch (error) {
  // A DATABASE_URL that cannot be reached: the message says which and what to do.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
console.log(
  server.embedded
    ? "Started a throwaway PostgreSQL server (embedded binaries)."
    : "Using the server of DATABASE_URL, in a new database.",
);
const sql = postgres(url, { onnotice: () => {} });

try {
  step("2. Create the schema with migrate()");
  const store = new PostgresStore();
  for (const m of await migrate(sql, { store })) {
    console.log(`Applied schema version ${m.version} (${m.name})`);
  }
  const tables = await sql`
    select table_name from information_schema.tables
    where table_schema = 'public' order by table_name`;
  console.log(`Tables: ${tables.map((t) => t.table_name).join(", ")}`);

  step("3. Append events to two aggregates");
  const user = await store.append(sql, [
    userEvent("UserRegistered", { email: "ada@example.com" }),
    userEvent("EmailChanged", { email: "ada@lovelace.dev" }),
  ], { expectedVersion: "no_stream" });
  console.log(
    `User user-1: versions ${user.fromVersion + 1n}..${user.toVersion}, ` +
      `global positions ${user.globalPositions.join(", ")} (one round trip)`,
  );
  const order = await store.append(sql, [orderEvent("OrderPlaced", { total: 42 })], {
    expectedVersion: "no_stream",
  });
  const shipped = await store.append(sql, [orderEvent("OrderShipped", { carrier: "owl" })], {
    expectedVersion: order.toVersion,
  });
  console.log(
    `Order order-1: version ${order.toVersion} then ${shipped.toVersion}, ` +
      `global positions ${[...order.globalPositions, ...shipped.globalPositions].join(", ")}`,
  );

  step("4. Read the User aggregate back");
  const stream = await store.readAggregateStream(sql, "User", "user-1");
  for (const e of stream.events) console.log(`  ${describe(e)}`);
  console.log(`User user-1 is at version ${stream.version}`);

  step("5. Page through the global log, 3 events at a time");
  let after: Cursor = START;
  for (let page = 1;; page++) {
    const events = await store.readEvents(sql, { after, limit: 3 });
    if (events.length === 0) {
      console.log(`Page ${page}: empty, the reader has caught up`);
      break;
    }
    console.log(`Page ${page}:`);
    for (const e of events) console.log(`  ${describe(e)}`);
    const last = events.at(-1)!;
    // The cursor is the pair, never the position alone: see docs/event-store.md.
    after = { transactionId: last.transactionId, globalPosition: last.globalPosition };
  }

  step("6. Append with a stale expected version");
  try {
    await store.append(sql, [userEvent("EmailChanged", { email: "stale@example.com" })], {
      expectedVersion: 1n,
    });
    throw new Error("expected an OptimisticConcurrencyError");
  } catch (error) {
    if (!(error instanceof OptimisticConcurrencyError)) throw error;
    console.log(`${error.name}: ${error.message}`);
    console.log(
      `  aggregate ${error.aggregateType} ${error.aggregateId}, expected ${error.expectedVersion}n, ` +
        `actual ${error.actualVersion}n`,
    );
    const unchanged = await store.readAggregateStream(sql, "User", "user-1");
    console.log(`Nothing was written: User user-1 is still at version ${unchanged.version}`);
  }
} finally {
  step("7. Stop");
  await sql.end();
  if (!server.embedded) await server.dropDatabase(url);
  await server.stop();
  console.log(server.embedded ? "PostgreSQL stopped and removed." : "Demo database dropped.");
}
