/**
 * The basics: append events, project them into a read model in the same
 * database, and see that a second run has nothing left to do.
 *
 *     deno run -A examples/basic.ts
 *
 * @module
 */

import { jsonCodec, type TypedEvent } from "../src/es/mod.ts";
import { ProjectionProcessor, typedProjection } from "../src/projection/mod.ts";
import { openExampleDb } from "./_db.ts";

/** A user's events, typed, and the codec that stores them as JSON. */
type UserEvent =
  | TypedEvent<"UserRegistered", { email: string }>
  | TypedEvent<"EmailChanged", { email: string }>;
const codec = jsonCodec<UserEvent>({ events: { UserRegistered: {}, EmailChanged: {} } });

const db = await openExampleDb();
const { sql, store } = db;

// The read model: one row per user.
await sql`create table users (id text primary key, email text not null, renamed int not null default 0)`;

// Two events of one new aggregate, in one append ("no_stream": it must be new).
const appended = await store.append(sql, [
  {
    aggregateType: "User",
    aggregateId: "user-1",
    ...codec.encode({ type: "UserRegistered", data: { email: "ada@example.com" } }),
  },
  {
    aggregateType: "User",
    aggregateId: "user-1",
    ...codec.encode({ type: "EmailChanged", data: { email: "ada@lovelace.dev" } }),
  },
], { expectedVersion: "no_stream" });
console.log(
  `appended 2 events to User user-1: version ${appended.fromVersion} -> ${appended.toVersion}, positions ${
    appended.globalPositions.join(", ")
  }`,
);

// Each handler writes through `tx`: the batch's transaction, which also
// moves the checkpoint, so the read model is updated exactly once. Each
// gets its event decoded and typed; the projection reads only the event
// types it has handlers for.
let handled = 0;
const users = typedProjection<UserEvent>({
  name: "users",
  codec,
  aggregateTypes: ["User"],
  handlers: {
    async UserRegistered(event, tx, { aggregateId }) {
      handled++;
      await tx`insert into users (id, email) values (${aggregateId}, ${event.data.email})`;
    },
    async EmailChanged(event, tx, { aggregateId }) {
      handled++;
      await tx`update users set email = ${event.data.email}, renamed = renamed + 1
        where id = ${aggregateId}`;
    },
  },
});

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
