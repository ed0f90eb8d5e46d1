/**
 * W8: projection catch-up over the fixture with a no-op handler, by a
 * consumer group of 1, 2 and 4 members in one process (`runGroupMembers`)
 * against static partitioning with the same worker counts (1 processor,
 * `runProjectionPartitions` with 2 and 4). Group mode adds a heartbeat
 * between batches and a lease check in each batch's lock; with every
 * member joined at the start, the shares are the same.
 *
 * @module
 */

import type { BenchDb } from "../db.ts";
import type { Fixture } from "../fixture.ts";
import type { Config } from "../config.ts";
import { ProjectionProcessor } from "../../src/projection/mod.ts";
import { runGroupMembers, runProjectionPartitions } from "../../src/runner/mod.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleave, runOnce, type Sample } from "../stats.ts";

let names = 0;

/** W8: group members against static partitions, catching up over every event. */
export async function w8(db: BenchDb, config: Config, fixture: Fixture): Promise<WorkloadResult> {
  const sql = await db.client(8);
  const { store, total } = fixture;
  const counted = () => {
    const projection = {
      name: `bench_w8_${names++}`,
      count: 0,
      handle() {
        projection.count++;
      },
    };
    return projection;
  };
  const check = (what: string, count: number) => {
    if (count !== total) throw new Error(`${what}: ${count} of ${total}`);
    return count;
  };
  const batch = { batchSize: 1000 };
  const variants: Record<string, () => Promise<Sample>> = {};
  for (const n of [1, 2, 4]) {
    variants[`static, ${n} worker${n > 1 ? "s" : ""}`] = () =>
      runOnce(async () => {
        const projection = counted();
        if (n === 1) {
          await new ProjectionProcessor(sql, store, batch).run(projection, {
            mode: "until_caught_up",
          });
        } else {
          await runProjectionPartitions(sql, store, projection, n, {
            mode: "until_caught_up",
            config: batch,
          });
        }
        return check(`static ${n}`, projection.count);
      });
    variants[`group, ${n} member${n > 1 ? "s" : ""}`] = () =>
      runOnce(async () => {
        const projection = counted();
        await runGroupMembers(sql, store, projection, n, {
          mode: "until_caught_up",
          config: batch,
        });
        return check(`group ${n}`, projection.count);
      });
  }
  // One untimed catch-up first: the first read of a freshly loaded log
  // sets its hint bits, which would slow whichever variant came first.
  await new ProjectionProcessor(sql, store, batch).run(counted(), { mode: "until_caught_up" });
  const samples = await interleave(config.reps, variants);
  const roles = Object.fromEntries(Object.keys(variants).map((v) => [v, "ours" as const]));
  return result(
    "W8",
    `group mode against static partitioning: catch-up over ${
      total.toLocaleString("en-US")
    } events, no-op handler`,
    samples,
    roles,
    [1, 2, 4].map((n) => ({
      variant: `group, ${n} member${n > 1 ? "s" : ""}`,
      against: `static, ${n} worker${n > 1 ? "s" : ""}`,
      min: 0.8,
    })),
    ["every run uses batchSize 1000; members join together, as runGroupMembers starts them"],
  );
}
