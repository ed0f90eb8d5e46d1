/**
 * Static partitioning across processes: the same script runs once per
 * partition, each process told its partition by flags or environment
 * variables, all against one database. Each process handles only the
 * segments its partition owns; together they handle every event once.
 *
 * Run the whole thing (a launcher seeds a database and starts one child
 * process per partition, then checks the result):
 *
 *     deno run -A examples/partitioned.ts --spawn 4
 *
 * Run one partition yourself, against your database (start one process per
 * key, 0..3; `--continuous` keeps it running until Ctrl-C/SIGTERM):
 *
 *     DATABASE_URL=postgres://... deno run -A examples/partitioned.ts --partition-key 1 --total-partitions 4
 *     DATABASE_URL=postgres://... PARTITION_KEY=1 TOTAL_PARTITIONS=4 deno run -A examples/partitioned.ts
 *
 * Without `DATABASE_URL`, a single partition runs on a throwaway database
 * that it seeds itself, and shows which share of the events it handled.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Projection, ProjectionProcessor, type RunMode } from "../src/projection/mod.ts";
import { jsonCodec, type TypedEvent, ValidationError } from "../mod.ts";
import { type PartitionConfig, partitionConfigFromArgs } from "../src/runner/mod.ts";
import { connectExampleDb, type ExampleDb, openExampleDb } from "./_db.ts";

// The script's own flags. The partition flags are declared too, so that a
// strict parse accepts them; partitionConfigFromArgs reads their values
// (and the environment variables) with its checks.
const { values: flags } = parseArgs({
  options: {
    spawn: { type: "string" },
    continuous: { type: "boolean", default: false },
    "partition-key": { type: "string" },
    "total-partitions": { type: "string" },
  },
});

const AGGREGATES = 60;
const EVENTS_PER_AGGREGATE = 5;

/** A sensor's event, typed, and its codec. */
type SensorEvent = TypedEvent<"Reading", { round: number; value: number }>;
const codec = jsonCodec<SensorEvent>({ events: { Reading: {} } });

async function createReadModel(db: ExampleDb): Promise<void> {
  await db.sql`create table if not exists partitioned_log (
    event_id uuid primary key,
    aggregate_id text not null,
    partition_key int not null)`;
}

async function seed(db: ExampleDb): Promise<number> {
  for (let round = 0; round < EVENTS_PER_AGGREGATE; round++) {
    for (let i = 0; i < AGGREGATES; i++) {
      await db.store.append(db.sql, [{
        aggregateType: "Sensor",
        aggregateId: `sensor-${i}`,
        ...codec.encode({ type: "Reading", data: { round, value: (i * 7 + round) % 100 } }),
      }]);
    }
  }
  return AGGREGATES * EVENTS_PER_AGGREGATE;
}

if (flags.spawn !== undefined) {
  await launch(Number(flags.spawn));
} else {
  await worker();
}

/** One partition: handle this process's share of the log. */
async function worker(): Promise<void> {
  const { partitionKey, totalPartitions } = partitionOrExit();
  const url = process.env.DATABASE_URL;
  const db = url ? await connectExampleDb(url) : await openExampleDb();
  await createReadModel(db);
  const seeded = url ? undefined : await seed(db);

  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => controller.abort());
  }
  const mode: RunMode = flags.continuous ? "continuous" : "until_caught_up";

  let handled = 0;
  const projection: Projection = {
    name: "sensor_log",
    async handle(event, tx) {
      await tx`insert into partitioned_log (event_id, aggregate_id, partition_key)
        values (${event.eventId}, ${event.aggregateId}, ${partitionKey})`;
      handled++;
    },
  };
  const processor = new ProjectionProcessor(db.sql, db.store, { partitionKey, totalPartitions });
  await processor.run(projection, { signal: controller.signal, mode });

  const share = seeded === undefined ? "" : ` of the ${seeded} in the log`;
  console.log(`partition ${partitionKey}/${totalPartitions}: handled ${handled} events${share}`);
  await db.close();
}

/** This process's partition; a bad flag or variable prints why and exits 2. */
function partitionOrExit(): PartitionConfig {
  try {
    return partitionConfigFromArgs();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    console.error(`partitioned: ${error.message}`);
    console.error(
      "usage: partitioned.ts [--partition-key <k>] [--total-partitions <n>] [--continuous]",
    );
    console.error("       (or PARTITION_KEY, TOTAL_PARTITIONS), or: partitioned.ts --spawn <n>");
    process.exit(2);
  }
}

/** Seeds a database and runs one child process per partition against it. */
async function launch(total: number): Promise<void> {
  if (!Number.isInteger(total) || total < 1) {
    throw new Error(`--spawn: expected a number of processes >= 1, got ${flags.spawn}`);
  }
  const db = await openExampleDb();
  await createReadModel(db);
  const events = await seed(db);
  console.log(`seeded ${events} events over ${AGGREGATES} aggregates; starting ${total} processes`);

  const script = fileURLToPath(import.meta.url);
  const exits = Array.from(
    { length: total },
    (_, key) =>
      new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, [
          "run",
          "-A",
          script,
          "--partition-key",
          String(key),
          "--total-partitions",
          String(total),
        ], { env: { ...process.env, DATABASE_URL: db.url }, stdio: "inherit" });
        child.on("error", reject);
        child.on("exit", (code) => resolve(code));
      }),
  );
  const codes = await Promise.all(exits);
  if (codes.some((code) => code !== 0)) throw new Error(`a partition process failed: ${codes}`);

  // The check: every event handled, by exactly one partition.
  const [check] = await db.sql`
    select count(*)::int as rows, count(distinct event_id)::int as distinct_events
    from partitioned_log`;
  const perPartition = await db.sql`
    select partition_key, count(*)::int as events, count(distinct aggregate_id)::int as aggregates
    from partitioned_log group by partition_key order by partition_key`;
  for (const row of perPartition) {
    console.log(
      `  partition ${row.partition_key}: ${row.events} events of ${row.aggregates} aggregates`,
    );
  }
  const [{ shared }] = await db.sql`
    select count(*)::int as shared from (
      select aggregate_id from partitioned_log
      group by aggregate_id having count(distinct partition_key) > 1) s`;
  console.log(
    `check: ${check.rows} rows for ${events} events, ${check.distinct_events} distinct; ` +
      `${shared} aggregates seen by more than one partition`,
  );
  if (check.rows !== events || check.distinct_events !== events || shared !== 0) {
    throw new Error("expected every event exactly once, and each aggregate on one partition");
  }
  await db.close();
  console.log("partitioned: done");
}
