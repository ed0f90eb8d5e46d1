/**
 * W3: bulk appends. One append of 1000 events to one aggregate, and one
 * transaction appending 10 events to each of 100 aggregates, against the
 * best hand-written bulk method (one unnest statement, or COPY).
 *
 * @module
 */

import type { Event } from "../../src/es/mod.ts";
import { appendCopy, appendUnnest } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import { eventsFor } from "../events.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleave, runTimes } from "../stats.ts";
import type { Config } from "../config.ts";

/** W3a: appends of 1000 events to one new aggregate each. */
export async function w3Bulk(db: BenchDb, config: Config): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const fast = await db.client(1, { noDelay: true });
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const batch = () => eventsFor(crypto.randomUUID(), 1000);
  const times = (op: (events: Event[]) => Promise<unknown>) =>
    runTimes(config.bulkAppends, () => op(batch()), 1000);
  const samples = await interleave(config.reps, {
    "pupsourcing": () => times((e) => store.append(sql, e, { expectedVersion: "no_stream" })),
    "pupsourcing, TCP_NODELAY client": () =>
      times((e) => store.append(fast, e, { expectedVersion: "no_stream" })),
    "hand-written unnest statement": () => times((e) => appendUnnest(sql, hand, e)),
    "hand-written COPY": () => times((e) => appendCopy(sql, hand, e)),
    "hand-written COPY, TCP_NODELAY client": () => times((e) => appendCopy(fast, hand, e)),
  });
  return result(
    "W3a",
    "one append of 1000 events to one aggregate",
    samples,
    {
      "pupsourcing": "ours",
      "hand-written unnest statement": "ceiling",
      "hand-written COPY": "ceiling",
      "hand-written COPY, TCP_NODELAY client": "ceiling",
    },
    [{ variant: "pupsourcing", against: "ceiling", min: 0.9 }],
  );
}

/** W3b: one transaction, 10 events to each of 100 new aggregates. */
export async function w3Multi(db: BenchDb, config: Config): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const fast = await db.client(1, { noDelay: true });
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const batches = () => Array.from({ length: 100 }, () => eventsFor(crypto.randomUUID(), 10));
  const times = (op: (batches: Event[][]) => Promise<unknown>) =>
    runTimes(config.bulkAppends, () => op(batches()), 1000);
  const entries = (bs: Event[][]) =>
    bs.map((events) => ({ events, expectedVersion: "no_stream" as const }));
  const samples = await interleave(config.reps, {
    "pupsourcing appendMany": () => times((bs) => store.appendMany(sql, entries(bs))),
    "pupsourcing appendMany in sql.begin (savepoint)": () =>
      times((bs) => sql.begin((tx) => store.appendMany(tx, entries(bs)))),
    "pupsourcing, 100 appends pipelined in sql.begin": () =>
      times((bs) =>
        sql.begin((tx) =>
          Promise.all(bs.map((b) => store.append(tx, b, { expectedVersion: "no_stream" })))
        )
      ),
    "hand-written unnest statement": () => times((bs) => appendUnnest(sql, hand, bs.flat())),
    "hand-written COPY": () => times((bs) => appendCopy(sql, hand, bs.flat())),
    "hand-written COPY, TCP_NODELAY client": () => times((bs) => appendCopy(fast, hand, bs.flat())),
  });
  return result(
    "W3b",
    "one transaction appending 10 events to each of 100 aggregates",
    samples,
    {
      "pupsourcing appendMany": "ours",
      "hand-written unnest statement": "ceiling",
      "hand-written COPY": "ceiling",
      "hand-written COPY, TCP_NODELAY client": "ceiling",
    },
    [{ variant: "pupsourcing appendMany", against: "ceiling", min: 0.9 }],
  );
}
