/**
 * W1 and W2: one-event appends, to new aggregates (1 and 8 clients) and to
 * existing aggregates (10 appends each, 8 clients), against the same work
 * as one hand-written statement.
 *
 * @module
 */

import type postgres from "postgres";
import { appendAt, appendNew } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import { eventsFor } from "../events.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleaveSlices, runFor } from "../stats.ts";
import type { Config } from "../config.ts";

/** W1: one event to a new aggregate per append. */
export async function w1(db: BenchDb, config: Config, clients: number): Promise<WorkloadResult> {
  const sql = await db.client(clients);
  const store = await db.freshStore();
  const quiet = await db.freshStore({ notifyChannel: false });
  const hand = await db.freshStore();
  const one = () => eventsFor(crypto.randomUUID(), 1);
  const samples = await interleaveSlices(config.reps, config.slices, {
    "pupsourcing": () =>
      runFor(
        config.seconds / config.slices,
        clients,
        () => store.append(sql, one(), { expectedVersion: "no_stream" }),
      ),
    "pupsourcing, notifyChannel: false": () =>
      runFor(
        config.seconds / config.slices,
        clients,
        () => quiet.append(sql, one(), { expectedVersion: "no_stream" }),
      ),
    "hand-written statement": () =>
      runFor(config.seconds / config.slices, clients, () => appendNew(sql, hand, one()[0])),
  });
  return result(
    `W1-${clients}`,
    `one-event appends to new aggregates, ${clients} client${clients > 1 ? "s" : ""}`,
    samples,
    { "pupsourcing": "ours", "hand-written statement": "ceiling" },
    [{ variant: "pupsourcing", against: "ceiling", min: 0.9 }],
  );
}

/** W2: one event per append, 10 appends per aggregate with exact expected versions. */
export async function w2(db: BenchDb, config: Config): Promise<WorkloadResult> {
  const clients = 8;
  const sql = await db.client(clients);
  const store = await db.freshStore();
  const quiet = await db.freshStore({ notifyChannel: false });
  const hand = await db.freshStore();
  const streams = (
    append: (sql: postgres.Sql, id: string, version: number) => Promise<unknown>,
  ) => {
    const current = Array.from({ length: clients }, () => crypto.randomUUID());
    return runFor(config.seconds / config.slices, clients, async (client, i) => {
      const version = i % 10;
      if (version === 0) current[client] = crypto.randomUUID();
      await append(sql, current[client], version);
    });
  };
  const samples = await interleaveSlices(config.reps, config.slices, {
    "pupsourcing": () =>
      streams((sql, id, v) =>
        store.append(sql, eventsFor(id, 1, v + 1), { expectedVersion: BigInt(v) })
      ),
    "pupsourcing, notifyChannel: false": () =>
      streams((sql, id, v) =>
        quiet.append(sql, eventsFor(id, 1, v + 1), { expectedVersion: BigInt(v) })
      ),
    "hand-written statement": () =>
      streams((sql, id, v) => appendAt(sql, hand, eventsFor(id, 1, v + 1)[0], v)),
  });
  return result(
    "W2",
    "one-event appends to existing aggregates (10 each, exact expected version), 8 clients",
    samples,
    { "pupsourcing": "ours", "hand-written statement": "ceiling" },
    [{ variant: "pupsourcing", against: "ceiling", min: 0.9 }],
  );
}
