/**
 * The basics: append events, project them into a read model in the same
 * database, and see that a second run has nothing left to do.
 *
 *     deno run -A examples/basic.ts
 *
 * @module
 */

import { type Projection, ProjectionProcessor } from "../src/projection/mod.ts";
import { json, openExampleDb, parse } from "./_db.ts";

const db = await openExampleDb();
const { sql, store } = db;

// The read model: one row per user.
await sql`create table users (id text primary key, email text not null, renamed int not null default 0)`;

// Two events of one new aggregate, in one append ("no_stream": it must be new).
const appended = await store.append(sql, [
  {
    aggregateType: "User",
    aggregateId: "user-1",
    eventType: "UserRegistered",
    payload: json({ email: "ada@example.com" }),
  },
  {
    aggregateType: "User",
    aggregateId: "user-1",
    eventType: "EmailChanged",
    payload: json({ email: "ada@lovelace.dev" }),
  },
], { expectedVersion: "no_stream" });
console.log(
  `appended 2 events to User user-1: version ${appended.fromVersion} -> ${appended.toVersion}, positions ${
    appended.globalPositions.join(", ")
  }`,
);

// The handler writes through `tx`: the batch's transaction, which also
// moves the checkpoint, so the read model is updated exactly once.
let handled = 0;
const users: Projection = {
  name: "users",
  aggregateTypes: ["User"],
  async handle(event, tx) {
    handled++;
    const { email } = parse<{ email: string }>(event.payload);
    if (event.eventType === "UserRegistered") {
      await tx`insert into users (id, email) values (${event.aggregateId}, ${email})`;
    } else if (event.eventType === "EmailChanged") {
      await tx`update users set email = ${email}, renamed = renamed + 1 where id = ${event.aggregateId}`;
    }
  },
};

const processor = new ProjectionProcessor(sql, store);

// "until_caught_up": process what is there, then return (batch jobs, tests).
// It resolves to how the run ended: { status: "caught_up", processed: 2, batches: 1, retries: 0 }.
const first = await processor.run(users, { mode: "until_caught_up" });
console.log(`first run: ${first.status}, handled ${handled} events`);
if (first.status !== "caught_up" || first.processed !== 2 || handled !== 2) {
  throw new Error(`expected the first run to catch up over 2 events, got ${JSON.stringify(first)}`);
}
console.log(
  "read model:",
  await sql`select id, email, renamed from users`.then((rows) => [...rows]),
);

// The checkpoint remembers where the projection got to: nothing is handled twice.
handled = 0;
await processor.run(users, { mode: "until_caught_up" });
console.log(`second run handled ${handled} events (the checkpoint was already past them)`);

if (handled !== 0) throw new Error("expected the second run to handle nothing");
await db.close();
console.log("basic: done");
