/**
 * The checkpoint survives a restart. A first worker handles part of the
 * log and is stopped; a second one, with a new connection pool as after a
 * process restart, resumes from the checkpoints and handles exactly the
 * rest.
 *
 *     deno run -A examples/stop_resume.ts
 *
 * @module
 */

import postgres from "postgres";
import { jsonCodec, type TypedEvent } from "../src/es/mod.ts";
import { type Projection, ProjectionProcessor, type RunOutcome } from "../src/projection/mod.ts";
import { openExampleDb } from "./_db.ts";

const TOTAL = 50;
const STOP_AFTER = 20;

/** A job's event, typed, and its codec. */
type JobEvent = TypedEvent<"JobRan", { i: number }>;
const codec = jsonCodec<JobEvent>({ events: { JobRan: {} } });

const db = await openExampleDb();
const { store } = db;
await db.sql`create table processed (event_id uuid primary key, run int not null)`;
for (let i = 0; i < TOTAL; i++) {
  await store.append(db.sql, [{
    aggregateType: "Job",
    aggregateId: `job-${i % 10}`,
    ...codec.encode({ type: "JobRan", data: { i } }),
  }]);
}
console.log(`appended ${TOTAL} events`);

function projection(run: number, onHandled?: (count: number) => void): Projection {
  let count = 0;
  return {
    name: "job_history",
    async handle(event, tx) {
      await tx`insert into processed (event_id, run) values (${event.eventId}, ${run})`;
      onHandled?.(++count);
    },
  };
}

// Run 1: a continuous worker, stopped (as by SIGTERM) once its handler has
// seen 20 events. The batch in flight is rolled back; what earlier batches
// committed stays, with their checkpoints.
let stopped: RunOutcome;
{
  const sql = postgres(db.url, { onnotice: () => {} });
  const controller = new AbortController();
  const processor = new ProjectionProcessor(sql, store, { batchSize: 10 });
  stopped = await processor.run(
    projection(1, (count) => {
      if (count === STOP_AFTER) controller.abort();
    }),
    { signal: controller.signal },
  );
  await sql.end();
}
const [{ first }] = await db.sql`select count(*)::int as first from processed where run = 1`;
const checkpoints = await db.sql`
  select segment, transaction_id::text as tx, global_position::text as pos
  from projection_checkpoints where projection_name = 'job_history' and global_position > 0
  order by segment`;
// The outcome tells a stopped run from one that caught up.
if (stopped.status !== "aborted" || stopped.processed !== first) {
  throw new Error(`expected run 1 aborted after ${first} events, got ${JSON.stringify(stopped)}`);
}
console.log(`run 1 ${stopped.status} after committing ${first} events; the checkpoints it left:`);
const bySpot = Map.groupBy(checkpoints, (row) => `(transaction ${row.tx}, position ${row.pos})`);
for (const [spot, rows] of bySpot) {
  console.log(`  segments ${rows.map((row) => row.segment).join(", ")}: ${spot}`);
}

// Run 2: a "restarted" worker with a fresh pool resumes from the checkpoints.
{
  const sql = postgres(db.url, { onnotice: () => {} });
  const processor = new ProjectionProcessor(sql, store, { batchSize: 10 });
  await processor.run(projection(2), { mode: "until_caught_up" });
  await sql.end();
}
const [{ second }] = await db.sql`select count(*)::int as second from processed where run = 2`;
console.log(
  `run 2 resumed and handled ${second} events; ${first} + ${second} = ${first + second} ` +
    `of ${TOTAL}, none twice (the read model's primary key would have refused it)`,
);
if (first + second !== TOTAL || first === 0 || second === 0) {
  throw new Error("expected the two runs to split the log between them");
}
await db.close();
console.log("stop_resume: done");
