/**
 * W7: `handleCommand` on one aggregate of 1,000, 10,000 and 100,000
 * events, without snapshots (every command folds the whole stream) and
 * with a snapshot every 100 events (it folds at most the last hundred).
 * The target: with snapshots, the time per command does not grow with the
 * stream (100,000 within 1.5× of 1,000).
 *
 * @module
 */

import { handleCommand, jsonCodec, type TypedEvent } from "../../src/es/mod.ts";
import { PostgresSnapshotStore, type PostgresStore } from "../../src/postgres/mod.ts";
import type { BenchDb } from "../db.ts";
import { result, type Role, type Target, type WorkloadResult } from "../result.ts";
import { interleave, runTimes, type Sample } from "../stats.ts";
import type { Config } from "../config.ts";
import type postgres from "postgres";

type Deposited = TypedEvent<"Deposited", { cents: bigint }>;
const codec = jsonCodec<Deposited>({ events: { Deposited: {} } });
const decider = {
  initialState: () => ({ balance: 0n }),
  evolve: (s: { balance: bigint }, e: Deposited) => ({ balance: s.balance + e.data.cents }),
  codec,
};
const deposit = (): Deposited[] => [{ type: "Deposited", data: { cents: 1n } }];
const EVERY = 100;
const TYPE = "Account";

/** Writes `length` deposits of one cent to a new aggregate, in one statement. */
async function seed(sql: postgres.Sql, store: PostgresStore, id: string, length: number) {
  const { events, aggregateHeads } = store.tables;
  await sql`
    insert into ${sql(events)} (aggregate_type, aggregate_id, aggregate_version,
      aggregate_id_hash, event_id, event_type, payload)
    select ${TYPE}, ${id}, v, 0, gen_random_uuid(), 'Deposited',
      convert_to('{"cents":{"$bigint":"1"}}', 'UTF8')
    from generate_series(1::int8, ${length}::int8) as v`;
  await sql`
    insert into ${sql(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
    values (${TYPE}, ${id}, ${length}::int8)`;
}

/** W7: one row per stream length, with and without snapshots. */
export async function w7(db: BenchDb, config: Config): Promise<WorkloadResult> {
  const sql = await db.client(1);
  const store = await db.freshStore({ notifyChannel: false });
  const snapshots = new PostgresSnapshotStore(store);
  const lengths = [1_000, 10_000, 100_000];
  const variants: Record<string, () => Promise<Sample>> = {};
  const roles: Record<string, Role> = {};
  const name = (length: number, snap: boolean) =>
    `${length.toLocaleString("en-US")} events, ${
      snap ? `snapshot every ${EVERY}` : "no snapshots"
    }`;
  for (const length of lengths) {
    for (const snap of [false, true]) {
      const id = `${snap ? "snap" : "full"}-${length}`;
      await seed(sql, store, id, length);
      const options = snap
        ? { ...decider, snapshots: { store: snapshots, every: EVERY, version: 1 } }
        : decider;
      if (snap) {
        // The snapshot the seeded stream would have had.
        await snapshots.writeSnapshot(sql, {
          aggregateType: TYPE,
          aggregateId: id,
          aggregateVersion: BigInt(length),
          snapshotVersion: 1,
          state: new TextEncoder().encode(`{"balance":{"$bigint":"${length}"}}`),
        });
      }
      // Without snapshots a command costs the stream's length: fewer of them.
      const commands = snap
        ? config.commands
        : Math.max(2, Math.ceil(config.commands * 1_000 / length));
      variants[name(length, snap)] = () =>
        runTimes(
          commands,
          () =>
            handleCommand(store, sql, { aggregateType: TYPE, aggregateId: id }, deposit, options),
          1,
        );
      roles[name(length, snap)] = "ours";
    }
  }
  await sql`vacuum analyze`;
  const samples = await interleave(config.reps, variants);
  const targets: Target[] = [{
    variant: name(100_000, true),
    against: name(1_000, true),
    min: 0.67, // 100,000 events within 1.5× of 1,000
  }];
  return result(
    "W7",
    "handleCommand on one aggregate (read, decide, append)",
    samples,
    roles,
    targets,
    [
      "each command reads the aggregate (from its snapshot when there is one), decodes and folds its events with jsonCodec, decides one event and appends it with the exact version read",
    ],
    "commands/s",
  );
}
