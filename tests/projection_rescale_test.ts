import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  checkpointRows,
  createReadModel,
  readModelProjection,
  within,
} from "./_projection.ts";

describe("projection rescaling", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** Runs `keys` of `total` partitions at once until each has caught up. */
  const runWorkers = (store: PostgresStore, total: number, keys: number[]) =>
    caughtUp(
      Promise.all(keys.map((partitionKey) => {
        const client = db.client({ max: 2 });
        return new ProjectionProcessor(client, store, {
          partitionKey,
          totalPartitions: total,
          batchSize: 7,
        }).run(readModelProjection(store, "rescaled"), { mode: "until_caught_up" });
      })),
      `workers ${keys.join(", ")} of ${total} to catch up`,
    );

  /** Runs `total` workers continuously while `count` events are appended, then stops them. */
  const runWhileAppending = async (store: PostgresStore, total: number, prefix: string) => {
    const controller = new AbortController();
    const running = Array.from(
      { length: total },
      (_, partitionKey) =>
        new ProjectionProcessor(db.client({ max: 2 }), store, {
          partitionKey,
          totalPartitions: total,
          batchSize: 5,
          pollInterval: 5,
        }).run(readModelProjection(store, "rescaled"), { signal: controller.signal }),
    );
    const events = await appendEvents(db.sql, store, { prefix, aggregates: 25, perAggregate: 2 });
    // Stop them wherever they are: some segments ahead of others.
    controller.abort();
    await within(Promise.all(running), 10_000, "every worker to stop after the abort");
    return events;
  };

  it("applies every event exactly once across 1 → 4 → 3 → 1 workers", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const all = [];
    all.push(
      ...await appendEvents(db.sql, store, { prefix: "one", aggregates: 20, perAggregate: 3 }),
    );
    await runWorkers(store, 1, [0]);

    all.push(
      ...await appendEvents(db.sql, store, { prefix: "four", aggregates: 20, perAggregate: 3 }),
    );
    await runWorkers(store, 4, [0, 1, 2, 3]);
    all.push(...await runWhileAppending(store, 4, "four-live"));
    // Only worker 0 of 4 catches up: its segments are now ahead of the rest.
    all.push(
      ...await appendEvents(db.sql, store, { prefix: "gap", aggregates: 20, perAggregate: 2 }),
    );
    await runWorkers(store, 4, [0]);
    const cursors = new Set(
      (await checkpointRows(db.sql, store, "rescaled")).map((r) => `${r.tx}/${r.position}`),
    );
    assert.ok(cursors.size > 1, "segments hold different checkpoints");

    // Three workers, each owning segments at different checkpoints.
    all.push(
      ...await appendEvents(db.sql, store, { prefix: "three", aggregates: 20, perAggregate: 2 }),
    );
    await runWorkers(store, 3, [0, 1, 2]);
    all.push(...await runWhileAppending(store, 3, "three-live"));

    all.push(
      ...await appendEvents(db.sql, store, { prefix: "back", aggregates: 20, perAggregate: 2 }),
    );
    await runWorkers(store, 1, [0]);

    const applied = await appliedTimes(db.sql, store);
    assert.equal(applied.size, all.length);
    assert.deepEqual(new Set(applied.keys()), new Set(all.map((e) => e.eventId)));
    assert.deepEqual([...new Set(applied.values())], [1]);
    const last = all.reduce((a, b) => (a.globalPosition > b.globalPosition ? a : b));
    const rows = await checkpointRows(db.sql, store, "rescaled");
    assert.equal(rows.length, 16);
    assert.ok(rows.every((r) => r.tx === last.transactionId && r.position === last.globalPosition));
  });
});
