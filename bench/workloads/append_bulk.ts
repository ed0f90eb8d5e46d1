/**
 * W3: bulk appends. One append of 1000 events to one aggregate, and one
 * transaction appending 10 events to each of 100 aggregates, against the
 * best hand-written bulk method (one unnest statement, or COPY), for each
 * {@linkcode AppendVariant}.
 *
 * @module
 */

import type { Event } from "../../src/es/mod.ts";
import type { PostgresStore } from "../../src/postgres/mod.ts";
import { appendCopy, appendUnnest } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import { eventsFor } from "../events.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleaveSlices, runTimes, type Sample } from "../stats.ts";
import type { Config } from "../config.ts";
import { type AppendVariant, BASELINE, variantId, variantTitle } from "./variant.ts";

/**
 * Times one slice of a repetition, `config.bulkAppends / config.bulkSlices`
 * runs of `op` on `store`, emptied first when the variant is fresh. The
 * variants take turns slice by slice, as W1's do: a repetition of 15
 * appends each in one go let a few seconds of a neighbour's load land on
 * one variant, and moved W3b/if between 0.80 and 1.24 of its ceiling from
 * one full run to the next. The events are made before the clock starts:
 * made inside it, their making (random ids, payloads) counted as the
 * append's time, alike for every variant, and pulled every ratio towards 1.
 */
function timer(db: BenchDb, config: Config, variant: AppendVariant) {
  const appends = Math.max(1, Math.round(config.bulkAppends / config.bulkSlices));
  return <T>(store: PostgresStore, make: () => T, op: (input: T) => Promise<unknown>) =>
  async (): Promise<Sample> => {
    if (variant.fresh) await db.empty(store);
    const inputs = Array.from({ length: appends }, make);
    return await runTimes(appends, (i) => op(inputs[i]), 1000);
  };
}

/** W3a: appends of 1000 events to one new aggregate each. */
export async function w3Bulk(
  db: BenchDb,
  config: Config,
  variant: AppendVariant = BASELINE,
): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const fast = await db.client(1, { noDelay: true });
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const batch = () => eventsFor(crypto.randomUUID(), 1000, 1, variant.shape);
  const time = timer(db, config, variant);
  const variants: Record<string, () => Promise<Sample>> = {
    "pupsourcing": time(
      store,
      batch,
      (e) => store.append(sql, e, { expectedVersion: "no_stream" }),
    ),
    "hand-written unnest statement": time(hand, batch, (e) => appendUnnest(sql, hand, e)),
    "hand-written COPY, TCP_NODELAY client": time(hand, batch, (e) => appendCopy(fast, hand, e)),
  };
  if (variant === BASELINE) {
    variants["pupsourcing, TCP_NODELAY client"] = time(
      store,
      batch,
      (e) => store.append(fast, e, { expectedVersion: "no_stream" }),
    );
    variants["hand-written COPY"] = time(hand, batch, (e) => appendCopy(sql, hand, e));
  }
  const samples = await interleaveSlices(config.reps, config.bulkSlices, variants);
  return result(
    variantId("W3a", variant),
    variantTitle("one append of 1000 events to one aggregate", variant),
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
export async function w3Multi(
  db: BenchDb,
  config: Config,
  variant: AppendVariant = BASELINE,
): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const fast = await db.client(1, { noDelay: true });
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const batches = () =>
    Array.from({ length: 100 }, () => eventsFor(crypto.randomUUID(), 10, 1, variant.shape));
  const time = timer(db, config, variant);
  const entries = (bs: Event[][]) =>
    bs.map((events) => ({ events, expectedVersion: "no_stream" as const }));
  const variants: Record<string, () => Promise<Sample>> = {
    "pupsourcing appendMany": time(store, batches, (bs) => store.appendMany(sql, entries(bs))),
    "hand-written unnest statement": time(
      hand,
      batches,
      (bs) => appendUnnest(sql, hand, bs.flat()),
    ),
    "hand-written COPY, TCP_NODELAY client": time(
      hand,
      batches,
      (bs) => appendCopy(fast, hand, bs.flat()),
    ),
  };
  if (variant === BASELINE) {
    variants["pupsourcing appendMany in sql.begin (savepoint)"] = time(
      store,
      batches,
      (bs) => sql.begin((tx) => store.appendMany(tx, entries(bs))),
    );
    variants["pupsourcing, 100 appends pipelined in sql.begin"] = time(
      store,
      batches,
      (bs) =>
        sql.begin((tx) =>
          Promise.all(bs.map((b) => store.append(tx, b, { expectedVersion: "no_stream" })))
        ),
    );
    variants["hand-written COPY"] = time(hand, batches, (bs) => appendCopy(sql, hand, bs.flat()));
  }
  const samples = await interleaveSlices(config.reps, config.bulkSlices, variants);
  return result(
    variantId("W3b", variant),
    variantTitle("one transaction appending 10 events to each of 100 aggregates", variant),
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
