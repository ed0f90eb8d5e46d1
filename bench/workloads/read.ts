/**
 * W4: reads. One aggregate of 1000 events, and the whole global log in
 * pages of 1000, against the same query hand-written through postgres.js.
 *
 * @module
 */

import { START } from "../../src/es/mod.ts";
import { COLUMNS } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import type { Fixture } from "../fixture.ts";
import { AGGREGATE_TYPE } from "../events.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleave, runOnce, runTimes } from "../stats.ts";
import type { Config } from "../config.ts";

/** W4a: read one 1000-event aggregate, many times over different aggregates. */
export async function w4Stream(
  db: BenchDb,
  config: Config,
  fixture: Fixture,
): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const { store, aggregateIds } = fixture;
  const events = store.tables.events;
  const id = (i: number) => aggregateIds[i % aggregateIds.length];
  const samples = await interleave(config.reps, {
    "pupsourcing readAggregateStream": () =>
      runTimes(config.streamReads, async (i) => {
        const stream = await store.readAggregateStream(sql, AGGREGATE_TYPE, id(i));
        if (stream.events.length !== config.fixtureVersions) throw new Error("short read");
      }, config.fixtureVersions),
    "hand-written SELECT (.values())": () =>
      runTimes(config.streamReads, async (i) => {
        const rows = await sql`
          select ${sql(COLUMNS)} from ${sql(events)}
          where aggregate_type = ${AGGREGATE_TYPE} and aggregate_id = ${id(i)}
          order by aggregate_version`.values();
        if (rows.length !== config.fixtureVersions) throw new Error("short read");
      }, config.fixtureVersions),
    "hand-written SELECT (row objects)": () =>
      runTimes(config.streamReads, async (i) => {
        const rows = await sql`
          select ${sql(COLUMNS)} from ${sql(events)}
          where aggregate_type = ${AGGREGATE_TYPE} and aggregate_id = ${id(i)}
          order by aggregate_version`;
        if (rows.length !== config.fixtureVersions) throw new Error("short read");
      }, config.fixtureVersions),
  });
  return result(
    "W4a",
    "read one aggregate of 1000 events",
    samples,
    {
      "pupsourcing readAggregateStream": "ours",
      "hand-written SELECT (.values())": "ceiling",
      "hand-written SELECT (row objects)": "ceiling",
    },
    [{ variant: "pupsourcing readAggregateStream", against: "ceiling", min: 0.8 }],
    ["ours decodes every row into a PersistedEvent (bigints, Date, bytes); the ceiling keeps postgres.js's own decoding"],
  );
}

/** W4b: read the whole global log in pages of 1000. */
export async function w4Log(
  db: BenchDb,
  config: Config,
  fixture: Fixture,
): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const { store, total } = fixture;
  const events = store.tables.events;
  const samples = await interleave(config.reps, {
    "pupsourcing readEvents": () =>
      runOnce(async () => {
        let after = START;
        let count = 0;
        for (;;) {
          const page = await store.readEvents(sql, { after, limit: 1000 });
          if (page.length === 0) break;
          count += page.length;
          const last = page[page.length - 1];
          after = { transactionId: last.transactionId, globalPosition: last.globalPosition };
        }
        if (count !== total) throw new Error(`read ${count} of ${total}`);
        return count;
      }),
    "hand-written SELECT loop (.values())": () =>
      runOnce(async () => {
        let after: [unknown, unknown] = ["0", "0"];
        let count = 0;
        for (;;) {
          const rows = await sql`
            select ${sql(COLUMNS)} from ${sql(events)}
            where (transaction_id, global_position) > (${after[0] as string}::xid8, ${after[
            1
          ] as string}::bigint)
              and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            order by transaction_id, global_position
            limit 1000`.values();
          if (rows.length === 0) break;
          count += rows.length;
          const last = rows[rows.length - 1];
          after = [last[1], last[0]];
        }
        if (count !== total) throw new Error(`read ${count} of ${total}`);
        return count;
      }),
  });
  return result(
    "W4b",
    `read the global log of ${total.toLocaleString("en-US")} events in pages of 1000`,
    samples,
    { "pupsourcing readEvents": "ours", "hand-written SELECT loop (.values())": "ceiling" },
    [{ variant: "pupsourcing readEvents", against: "ceiling", min: 0.8 }],
  );
}
