/**
 * One projection worker as a long-running service: it handles what is in
 * the log, keeps handling new events as they are appended (woken by
 * NOTIFY), and stops cleanly on SIGINT (Ctrl-C) or SIGTERM (systemd,
 * Docker, Kubernetes): the handler in flight finishes, its batch is rolled
 * back (it is handled again on the next start), the run resolves, and the
 * connections are closed.
 *
 *     deno run -A examples/single_worker.ts                  # until Ctrl-C
 *     deno run -A examples/single_worker.ts --stop-after 2   # sends itself SIGTERM after 2 s
 *
 * While it runs, a writer appends a new user every 100 ms, so there is
 * something to see.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { jsonCodec, type TypedEvent } from "../src/es/mod.ts";
import { ProjectionProcessor, typedProjection } from "../src/projection/mod.ts";
import { openExampleDb } from "./_db.ts";

/** A user's event, typed, and its codec. */
type UserEvent = TypedEvent<"UserRegistered", { email: string }>;
const codec = jsonCodec<UserEvent>({ events: { UserRegistered: {} } });

const { values: flags } = parseArgs({
  options: { "stop-after": { type: "string" } },
});
const stopAfter = flags["stop-after"] === undefined ? undefined : Number(flags["stop-after"]);
if (stopAfter !== undefined && !(stopAfter > 0)) {
  throw new Error(`--stop-after: expected a number of seconds > 0, got ${flags["stop-after"]}`);
}

const db = await openExampleDb();
const { sql, store } = db;
await sql`create table user_directory (id text primary key, email text not null)`;

let appended = 0;
async function registerUser(): Promise<void> {
  const id = `user-${++appended}`;
  await store.append(sql, [{
    aggregateType: "User",
    aggregateId: id,
    ...codec.encode({ type: "UserRegistered", data: { email: `${id}@example.com` } }),
  }], { expectedVersion: "no_stream" });
}
for (let i = 0; i < 3; i++) await registerUser();
console.log(`appended ${appended} users before starting`);

let handled = 0;
const directory = typedProjection<UserEvent>({
  name: "user_directory",
  codec,
  handlers: {
    async UserRegistered(event, tx, { aggregateId }) {
      await tx`insert into user_directory (id, email) values (${aggregateId}, ${event.data.email})`;
      handled++;
    },
  },
});

// Graceful shutdown: a signal aborts the controller; the processor finishes
// (or rolls back) the batch in flight and `run` resolves.
const controller = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.log(`${signal} received: stopping after the batch in flight`);
    controller.abort();
  });
}
if (stopAfter !== undefined) {
  setTimeout(() => process.kill(process.pid, "SIGTERM"), stopAfter * 1000);
}

// A writer, so the worker has new events to pick up while it runs.
const writer = (async () => {
  while (!controller.signal.aborted) {
    await registerUser();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})();

console.log(
  stopAfter === undefined
    ? "worker running; press Ctrl-C to stop"
    : `worker running; stopping in ${stopAfter} s`,
);
const processor = new ProjectionProcessor(sql, store);
await processor.run(directory, { signal: controller.signal });
await writer;

const [{ rows }] = await sql`select count(*)::int as rows from user_directory`;
console.log(`stopped cleanly: ${rows} users in the read model, ${appended} appended`);
console.log(
  `the other ${appended - rows} wait for the next start, from the checkpoint ` +
    `(a batch in flight at the stop is rolled back, ${handled - rows} handler call(s) here)`,
);
if (rows < 3 || rows > handled) throw new Error(`expected 3..${handled} rows, got ${rows}`);
await db.close();
console.log("single_worker: done");
