/**
 * W1 and W2: one-event appends, to new aggregates (1 and 8 clients) and to
 * existing aggregates (10 appends each, 8 clients), against the same work
 * as one hand-written statement, for each {@linkcode AppendVariant}.
 *
 * @module
 */

import type postgres from "postgres";
import type { Event } from "../../src/es/mod.ts";
import type { PostgresStore } from "../../src/postgres/mod.ts";
import { appendAt, appendNew } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import { eventsFor } from "../events.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleaveSlices, runFor, type Sample } from "../stats.ts";
import type { Config } from "../config.ts";
import { type AppendVariant, BASELINE, variantId, variantTitle } from "./variant.ts";

/**
 * The variants' runs: each on its own store, its tables emptied before
 * each slice when the variant measures fresh tables.
 */
function runner(db: BenchDb, config: Config, variant: AppendVariant, clients: number) {
  return (store: PostgresStore, op: (client: number, i: number) => Promise<unknown>) =>
  async (): Promise<Sample> => {
    if (variant.fresh) await db.empty(store);
    return await runFor(config.seconds / config.slices, clients, op);
  };
}

/** W1: one event to a new aggregate per append. */
export async function w1(
  db: BenchDb,
  config: Config,
  clients: number,
  variant: AppendVariant = BASELINE,
): Promise<WorkloadResult> {
  const sql = await db.client(clients);
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const run = runner(db, config, variant, clients);
  const one = () => eventsFor(crypto.randomUUID(), 1, 1, variant.shape);
  const variants: Record<string, () => Promise<Sample>> = {
    "pupsourcing": run(store, () => store.append(sql, one(), { expectedVersion: "no_stream" })),
    "hand-written statement": run(hand, () => appendNew(sql, hand, one()[0])),
  };
  if (variant === BASELINE) {
    const quiet = await db.freshStore({ notifyChannel: false });
    variants["pupsourcing, notifyChannel: false"] = run(
      quiet,
      () => quiet.append(sql, one(), { expectedVersion: "no_stream" }),
    );
  }
  const samples = await interleaveSlices(config.reps, config.slices, variants);
  return result(
    variantId(`W1-${clients}`, variant),
    variantTitle(
      `one-event appends to new aggregates, ${clients} client${clients > 1 ? "s" : ""}`,
      variant,
    ),
    samples,
    { "pupsourcing": "ours", "hand-written statement": "ceiling" },
    [{ variant: "pupsourcing", against: "ceiling", min: 0.9 }],
  );
}

/** W2: one event per append, 10 appends per aggregate with exact expected versions. */
export async function w2(
  db: BenchDb,
  config: Config,
  variant: AppendVariant = BASELINE,
): Promise<WorkloadResult> {
  const clients = 8;
  const sql = await db.client(clients);
  const store = await db.freshStore();
  const hand = await db.freshStore();
  const run = runner(db, config, variant, clients);
  const streams = (
    on: PostgresStore,
    append: (sql: postgres.Sql, event: Event, version: number) => Promise<unknown>,
  ) => {
    const current = Array.from({ length: clients }, () => crypto.randomUUID());
    return run(on, async (client, i) => {
      const version = i % 10;
      if (version === 0) current[client] = crypto.randomUUID();
      await append(sql, eventsFor(current[client], 1, version + 1, variant.shape)[0], version);
    });
  };
  const variants: Record<string, () => Promise<Sample>> = {
    "pupsourcing": streams(
      store,
      (sql, event, v) => store.append(sql, [event], { expectedVersion: BigInt(v) }),
    ),
    "hand-written statement": streams(hand, (sql, event, v) => appendAt(sql, hand, event, v)),
  };
  if (variant === BASELINE) {
    const quiet = await db.freshStore({ notifyChannel: false });
    variants["pupsourcing, notifyChannel: false"] = streams(
      quiet,
      (sql, event, v) => quiet.append(sql, [event], { expectedVersion: BigInt(v) }),
    );
  }
  const samples = await interleaveSlices(config.reps, config.slices, variants);
  return result(
    variantId("W2", variant),
    variantTitle(
      "one-event appends to existing aggregates (10 each, exact expected version), 8 clients",
      variant,
    ),
    samples,
    { "pupsourcing": "ours", "hand-written statement": "ceiling" },
    [{ variant: "pupsourcing", against: "ceiling", min: 0.9 }],
  );
}

/**
 * W1c: W1 with many callers on a small pool (`callers` concurrent appends
 * on `pool` connections), with and without append coalescing.
 */
export async function w1Coalesced(
  db: BenchDb,
  config: Config,
  callers: number,
  pool: number,
): Promise<WorkloadResult> {
  const sql = await db.client(pool);
  const coalesced = await db.freshStore({ coalesce: true });
  // Coalescing is on by default: the reference turns it off.
  const store = await db.freshStore({ coalesce: false });
  const hand = await db.freshStore();
  const run = runner(db, config, BASELINE, callers);
  const one = () => eventsFor(crypto.randomUUID(), 1);
  const samples = await interleaveSlices(config.reps, config.slices, {
    "pupsourcing, coalesce: true": run(
      coalesced,
      () => coalesced.append(sql, one(), { expectedVersion: "no_stream" }),
    ),
    "pupsourcing, coalesce: false": run(
      store,
      () => store.append(sql, one(), { expectedVersion: "no_stream" }),
    ),
    "hand-written statement": run(hand, () => appendNew(sql, hand, one()[0])),
  });
  // Each statement is one transaction and files its events under its id:
  // the events per transaction id are the appends per statement.
  const [{ appends, statements }] = await sql`
    select count(*)::int as appends, count(distinct transaction_id)::int as statements
    from ${sql(coalesced.tables.events)}`;
  return result(
    `W1c-${callers}`,
    `one-event appends to new aggregates, ${callers} caller${
      callers > 1 ? "s" : ""
    } on a pool of ${pool}`,
    samples,
    { "pupsourcing, coalesce: true": "ours", "hand-written statement": "ceiling" },
    callers > pool
      ? [{
        variant: "pupsourcing, coalesce: true",
        against: "pupsourcing, coalesce: false",
        min: 3,
      }]
      : [{
        variant: "pupsourcing, coalesce: true",
        against: "pupsourcing, coalesce: false",
        min: 0.95,
      }],
    [
      `coalesce: true: ${(appends / statements).toFixed(1)} appends per statement on average ` +
      `(${appends} appends in ${statements} transactions).`,
    ],
  );
}
