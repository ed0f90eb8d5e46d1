/**
 * W4: reads. One aggregate of 1000 events, and the whole global log in
 * pages of 1000, against the same query hand-written through postgres.js:
 * with its own bytea decoding, and with the payload as base64 (the best
 * hand-written read; the best one is the ceiling).
 *
 * @module
 */

import { START } from "../../src/es/mod.ts";
import { columns, payloadOf } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import type { Fixture } from "../fixture.ts";
import { AGGREGATE_TYPE } from "../events.ts";
import { result, type Role, type WorkloadResult } from "../result.ts";
import { interleave, runOnce, runTimes, type Sample } from "../stats.ts";
import type { Config } from "../config.ts";

const HAND = {
  "hand-written SELECT (postgres.js bytea decoding)": false,
  "hand-written SELECT (payload as base64)": true,
};

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
  let sink = 0;
  const variants: Record<string, () => Promise<Sample>> = {
    "pupsourcing readAggregateStream": () =>
      runTimes(config.streamReads, async (i) => {
        const stream = await store.readAggregateStream(sql, AGGREGATE_TYPE, id(i));
        if (stream.events.length !== config.fixtureVersions) throw new Error("short read");
      }, config.fixtureVersions),
  };
  const roles: Record<string, Role> = { "pupsourcing readAggregateStream": "ours" };
  for (const [name, base64] of Object.entries(HAND)) {
    roles[name] = "ceiling";
    variants[name] = () =>
      runTimes(config.streamReads, async (i) => {
        const rows = await sql`
          select ${columns(sql, base64)} from ${sql(events)}
          where aggregate_type = ${AGGREGATE_TYPE} and aggregate_id = ${id(i)}
          order by aggregate_version`.values();
        if (rows.length !== config.fixtureVersions) throw new Error("short read");
        for (const row of rows) sink += payloadOf(row[8], base64).length;
      }, config.fixtureVersions);
  }
  const samples = await interleave(config.reps, variants);
  return result(
    "W4a",
    "read one aggregate of 1000 events",
    samples,
    roles,
    [{ variant: "pupsourcing readAggregateStream", against: "ceiling", min: 0.8 }],
    [
      `ours decodes every row into a PersistedEvent (bigints, Date, bytes, metadata); the ceilings keep postgres.js's row arrays (${
        sink > 0 ? "payload bytes decoded" : ""
      })`,
    ],
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
  const variants: Record<string, () => Promise<Sample>> = {
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
  };
  const roles: Record<string, Role> = { "pupsourcing readEvents": "ours" };
  for (const [name, base64] of Object.entries(HAND)) {
    roles[name] = "ceiling";
    variants[name] = () =>
      runOnce(async () => {
        let after: [unknown, unknown] = ["0", "0"];
        let count = 0;
        for (;;) {
          const rows = await sql`
            select ${columns(sql, base64)} from ${sql(events)}
            where (transaction_id, global_position) > (${after[0] as string}::xid8, ${after[
            1
          ] as string}::bigint)
              and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            order by transaction_id, global_position
            limit 1000`.values();
          if (rows.length === 0) break;
          count += rows.length;
          for (const row of rows) payloadOf(row[8], base64);
          const last = rows[rows.length - 1];
          after = [last[1], last[0]];
        }
        if (count !== total) throw new Error(`read ${count} of ${total}`);
        return count;
      });
  }
  const samples = await interleave(config.reps, variants);
  return result(
    "W4b",
    `read the global log of ${total.toLocaleString("en-US")} events in pages of 1000`,
    samples,
    roles,
    [{ variant: "pupsourcing readEvents", against: "ceiling", min: 0.8 }],
  );
}
