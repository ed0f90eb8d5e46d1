/**
 * W5: projection catch-up over the fixture with a no-op handler: one
 * worker (with the default error policy, and with `onError: { then:
 * "park" }`), and 4 partitions in one process, against a hand-written
 * read-and-checkpoint loop (read a page below the safe horizon, hand each
 * event to the handler, move the checkpoint, all in one transaction).
 *
 * @module
 */

import type { PersistedEvent } from "../../src/es/mod.ts";
import { columns, payloadOf } from "../ceiling.ts";
import type { BenchDb } from "../db.ts";
import type { Fixture } from "../fixture.ts";
import { loadProjectionApi } from "../projection_api.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleave, runOnce, type Sample } from "../stats.ts";
import type { Config } from "../config.ts";

let names = 0;

/** W5: catch up over every event of the fixture. */
export async function w5(db: BenchDb, config: Config, fixture: Fixture): Promise<WorkloadResult> {
  const sql = await db.client(8);
  const { store, total } = fixture;
  const events = store.tables.events;
  const checkpoints = `${store.tables.schema}.bench_hand_checkpoints`;
  await sql.unsafe(`create table if not exists ${checkpoints} (
    name text primary key, transaction_id xid8 not null, global_position bigint not null)`);
  // deno-lint-ignore no-unused-vars
  let sink: PersistedEvent | undefined;
  const handLoop = (base64: boolean) => () =>
    runOnce(async () => {
      const name = `hand_${names++}`;
      let after: [string, string] = ["0", "0"];
      let count = 0;
      for (;;) {
        const n = await sql.begin(async (tx) => {
          const rows = await tx`
            select ${columns(tx, base64)} from ${tx(events)}
            where (transaction_id, global_position) > (${after[0]}::xid8, ${after[1]}::bigint)
              and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            order by transaction_id, global_position
            limit 1000`.values();
          for (const r of rows) {
            sink = {
              globalPosition: BigInt(r[0] as string),
              transactionId: BigInt(r[1] as string),
              aggregateType: r[2] as string,
              aggregateId: r[3] as string,
              aggregateVersion: BigInt(r[4] as string),
              eventId: r[5] as string,
              eventType: r[6] as string,
              eventVersion: r[7] as number,
              payload: payloadOf(r[8], base64),
              metadata: null,
              traceId: r[10] as string | null,
              correlationId: r[11] as string | null,
              causationId: r[12] as string | null,
              createdAt: r[13] as Date,
            };
          }
          if (rows.length === 0) return 0;
          const last = rows[rows.length - 1];
          after = [String(last[1]), String(last[0])];
          await tx`
            insert into ${tx(checkpoints)} (name, transaction_id, global_position)
            values (${name}, ${after[0]}::xid8, ${after[1]}::bigint)
            on conflict (name) do update
              set transaction_id = excluded.transaction_id, global_position = excluded.global_position`;
          return rows.length;
        });
        if (n === 0) break;
        count += n;
      }
      if (count !== total) throw new Error(`hand loop read ${count} of ${total}`);
      return count;
    });
  const api = await loadProjectionApi();
  const variants: Record<string, () => Promise<Sample>> = {
    "hand-written read-and-checkpoint loop (postgres.js bytea decoding)": handLoop(false),
    "hand-written read-and-checkpoint loop (payload as base64)": handLoop(true),
  };
  const notes: string[] = [];
  if (api) {
    const counted = (onError?: { then: "park" }) => {
      const projection = {
        name: `bench_${names++}`,
        onError,
        count: 0,
        handle() {
          projection.count++;
        },
      };
      return projection;
    };
    variants["pupsourcing, 1 worker"] = () =>
      runOnce(async () => {
        const projection = counted();
        await api.processor(sql, store, { batchSize: 1000 }).run(projection, {
          mode: "until_caught_up",
        });
        if (projection.count !== total) {
          throw new Error(`1 worker: ${projection.count} of ${total}`);
        }
        return projection.count;
      });
    variants["pupsourcing, 1 worker, onError park"] = () =>
      runOnce(async () => {
        const projection = counted({ then: "park" });
        await api.processor(sql, store, { batchSize: 1000 }).run(projection, {
          mode: "until_caught_up",
        });
        if (projection.count !== total) {
          throw new Error(`1 worker, park: ${projection.count} of ${total}`);
        }
        return projection.count;
      });
    if (api.partitions) {
      const partitions = api.partitions;
      variants["pupsourcing, 4 partitions in one process"] = () =>
        runOnce(async () => {
          const projection = counted();
          await partitions(sql, store, projection, 4, {
            mode: "until_caught_up",
            config: { batchSize: 1000 },
          });
          if (projection.count !== total) {
            throw new Error(`4 partitions: ${projection.count} of ${total}`);
          }
          return projection.count;
        });
    } else notes.push("src/runner has no runProjectionPartitions yet: no 4-partition row.");
    notes.push(
      "both runs use batchSize 1000 (the processor's default is 100), the ceiling's page size",
    );
  } else notes.push("src/projection has no ProjectionProcessor yet: only the ceiling ran.");
  const samples = await interleave(config.reps, variants);
  return result(
    "W5",
    `projection catch-up over ${total.toLocaleString("en-US")} events, no-op handler`,
    samples,
    {
      "hand-written read-and-checkpoint loop (postgres.js bytea decoding)": "ceiling",
      "hand-written read-and-checkpoint loop (payload as base64)": "ceiling",
      "pupsourcing, 1 worker": "ours",
      "pupsourcing, 1 worker, onError park": "ours",
      "pupsourcing, 4 partitions in one process": "ours",
    },
    [
      { variant: "pupsourcing, 1 worker", against: "ceiling", min: 0.95 },
      // Parking costs one lookup of parked aggregates per batch, and nothing per event.
      {
        variant: "pupsourcing, 1 worker, onError park",
        against: "pupsourcing, 1 worker",
        min: 0.9,
      },
      {
        variant: "pupsourcing, 4 partitions in one process",
        against: "pupsourcing, 1 worker",
        min: 1,
      },
    ],
    notes,
  );
}
