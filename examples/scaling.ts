/**
 * Changing the number of workers is safe: checkpoints belong to the
 * projection's 16 fixed segments, not to workers, so when the worker count
 * changes, each segment simply moves to another worker together with its
 * checkpoint. This example grows a projection from 1 to 2 to 4 workers,
 * shrinks it to 3 and back to 1, appending events between each step, and
 * checks that no event was lost or handled twice.
 *
 *     deno run -A examples/scaling.ts
 *
 * @module
 */

import { jsonCodec, segmentOf, type TypedEvent } from "../mod.ts";
import type { Projection } from "../src/projection/mod.ts";
import { runProjectionPartitions } from "../src/runner/mod.ts";
import { openExampleDb } from "./_db.ts";

const SEGMENTS = 16;
const STEPS = [1, 2, 4, 3, 1];
const AGGREGATES = 24;

/** A counter's event, typed, and its codec. */
type CounterEvent = TypedEvent<"Incremented", { step: number }>;
const codec = jsonCodec<CounterEvent>({ events: { Incremented: {} } });

const db = await openExampleDb();
const { sql, store } = db;
await sql`create table handled (event_id uuid primary key, workers int not null)`;

const deliveries = new Map<string, number>();
let workers = 0;
const perWorker: number[] = [];
const projection: Projection = {
  name: "scaling_demo",
  async handle(event, tx) {
    // The primary key makes a second delivery of an event fail loudly.
    await tx`insert into handled (event_id, workers) values (${event.eventId}, ${workers})`;
    deliveries.set(event.eventId, (deliveries.get(event.eventId) ?? 0) + 1);
    perWorker[segmentOf(event.aggregateId, SEGMENTS) % workers]++;
  },
};

let appended = 0;
for (const [step, count] of STEPS.entries()) {
  // The same aggregates get new events at every step, so after a rescale
  // their segments continue on another worker, from their checkpoints.
  for (let i = 0; i < AGGREGATES; i++) {
    await store.append(sql, [{
      aggregateType: "Counter",
      aggregateId: `counter-${i}`,
      ...codec.encode({ type: "Incremented", data: { step } }),
    }]);
    appended++;
  }
  workers = count;
  perWorker.length = 0;
  perWorker.push(...Array(count).fill(0));
  await runProjectionPartitions(sql, store, projection, count, { mode: "until_caught_up" });
  console.log(
    `step ${step + 1}: ${AGGREGATES} new events, ${count} worker(s) handled ` +
      `[${perWorker.join(", ")}] (total appended so far: ${appended})`,
  );
}

const logIds = (await sql`select event_id from events`).map((row) => row.event_id as string);
const lost = logIds.filter((id) => !deliveries.has(id)).length;
const repeated = [...deliveries.values()].filter((n) => n > 1).length;
const [{ rows }] = await sql`select count(*)::int as rows from handled`;
console.log(
  `check: ${logIds.length} events in the log, ${deliveries.size} handled, ` +
    `${lost} lost, ${repeated} handled more than once, ${rows} read-model rows`,
);
if (lost !== 0 || repeated !== 0 || rows !== logIds.length || deliveries.size !== appended) {
  throw new Error("rescaling lost or repeated events");
}
await db.close();
console.log("scaling: done");
