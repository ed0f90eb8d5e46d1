/**
 * The operations library: `projectionStatus`, `resetProjection` and
 * `waitForProjections`, against real PostgreSQL and real processors.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ValidationError } from "../src/es/mod.ts";
import {
  ProjectionBusyError,
  ProjectionProcessor,
  projectionStatus,
  ProjectionWaitTimeoutError,
  resetProjection,
  waitForProjections,
} from "../src/projection/mod.ts";
import { runProjectionPartitions } from "../src/runner/mod.ts";
import { after, before, describe, it, within } from "./_bounds.ts";
import { event, holdTransaction, setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  checkpointRows,
  createReadModel,
  inSchema,
  readModelProjection,
} from "./_projection.ts";

describe("operations library", () => {
  let db: TestDb;
  before(async () => {
    db = await setupDatabase();
  });
  after(() => db?.close());

  it("projectionStatus: checkpoints, lag in events and seconds, parked, unknown names", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 3, perAggregate: 2 });
    const processor = new ProjectionProcessor(db.sql, store, { segments: 4 });
    await caughtUp(processor.run(readModelProjection(store, "p"), { mode: "until_caught_up" }));
    await appendEvents(db.sql, store, { prefix: "late", aggregates: 1, perAggregate: 3 });

    const [status] = await projectionStatus(db.sql, store);
    assert.equal(status.name, "p");
    assert.equal(status.segments, 4);
    assert.equal(status.segmentDetails.length, 4);
    assert.equal(status.lagEvents, 3n);
    assert.ok(status.lagSeconds >= 0 && status.lagSeconds < 60, String(status.lagSeconds));
    assert.equal(status.parked, 0);
    assert.equal(status.lastError, null);
    assert.equal(status.newestCheckpoint.globalPosition, 6n);

    // A projection's scope narrows the count: these events are not its own.
    const scoped = readModelProjection(store, "p", { eventTypes: ["Withdrawn"] });
    const [narrow] = await projectionStatus(db.sql, store, { projections: [scoped] });
    assert.equal(narrow.lagEvents, 0n);
    assert.equal(narrow.lagSeconds, 0);

    await assert.rejects(
      projectionStatus(db.sql, store, { projections: ["nope"] }),
      (e: unknown) => e instanceof ValidationError && /known: p/.test(e.message),
    );
    await caughtUp(processor.run(readModelProjection(store, "p"), { mode: "until_caught_up" }));
    const [done] = await projectionStatus(db.sql, store, { projections: ["p"] });
    assert.equal(done.lagEvents, 0n);
  });

  it("resetProjection: back to the start with the reset hook, one transaction; to now", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const events = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 3 });
    const table = inSchema(store, "applied");
    const projection = readModelProjection(store, "p", {
      async reset(tx) {
        await tx.unsafe(`delete from ${table}`);
      },
    });
    const processor = new ProjectionProcessor(db.sql, store, { segments: 4 });
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.equal((await appliedTimes(db.sql, store)).size, 6);

    const outcome = await resetProjection(db.sql, store, projection, { to: "start" });
    assert.deepEqual(outcome, {
      segments: 4,
      checkpoint: { transactionId: 0n, globalPosition: 0n },
      parkedRemoved: 0,
      hookRan: true,
    });
    assert.equal((await appliedTimes(db.sql, store)).size, 0);
    assert.ok((await checkpointRows(db.sql, store, "p")).every((r) => r.position === 0n));
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual([...(await appliedTimes(db.sql, store)).values()], [1, 1, 1, 1, 1, 1]);

    // A hook that fails leaves the checkpoints where they were.
    const failing = { ...projection, reset: () => Promise.reject(new Error("hook broke")) };
    await assert.rejects(resetProjection(db.sql, store, failing), /hook broke/);
    assert.ok((await checkpointRows(db.sql, store, "p")).every((r) => r.position === 6n));

    const now = await resetProjection(db.sql, store, "p", { to: "now" });
    assert.equal(now.hookRan, false);
    assert.equal(now.checkpoint.globalPosition, events.at(-1)!.globalPosition);

    await assert.rejects(
      resetProjection(db.sql, store, "other"),
      (e: unknown) => e instanceof ValidationError && /known: p/.test(e.message),
    );
    await assert.rejects(
      resetProjection(db.sql, store, "p", { to: "later" as "now" }),
      (e: unknown) => e instanceof ValidationError && e.field === "options.to",
    );
  });

  it("resetProjection refuses while a batch holds rows or a lease is live, unless forced", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 1 });
    const processor = new ProjectionProcessor(db.sql, store, { segments: 2 });
    await caughtUp(processor.run({ name: "p", handle() {} }, { mode: "until_caught_up" }));
    const checkpoints = store.tables.checkpoints;

    const held = await holdTransaction(db.client({ max: 1 }));
    await held.tx.unsafe(
      `select 1 from ${checkpoints} where projection_name = 'p' and segment = 1 for update`,
    );
    await assert.rejects(
      resetProjection(db.sql, store, "p"),
      (e: unknown) => e instanceof ProjectionBusyError && /a batch holds/.test(e.message),
    );
    const forced = resetProjection(db.sql, store, "p", { force: true });
    await sleep(100);
    await held.commit();
    assert.equal((await within(forced, 10_000, "the forced reset")).segments, 2);

    await db.sql.unsafe(
      `update ${checkpoints} set owner_id = 'worker-7', lease_expires_at = now() + interval '1 minute'
       where projection_name = 'p' and segment = 0`,
    );
    await assert.rejects(
      resetProjection(db.sql, store, "p"),
      (e: unknown) =>
        e instanceof ProjectionBusyError && e.holders[0] === "worker worker-7 holds a lease",
    );
    assert.equal((await resetProjection(db.sql, store, "p", { force: true })).segments, 2);
  });

  it("a runner's worker logs where it starts, its segments, and its progress while catching up", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 6, perAggregate: 5 });
    const lines: { message: string; fields: Record<string, unknown> }[] = [];
    const logger = {
      debug() {},
      info: (message: string, fields = {}) => void lines.push({ message, fields }),
      error: (message: string, fields = {}) => void lines.push({ message, fields }),
    };
    const slow = { name: "slow", handle: () => sleep(10) };
    await caughtUp(runProjectionPartitions(db.sql, store, slow, 2, {
      mode: "until_caught_up",
      config: { logger, batchSize: 5, segments: 4 },
      progressIntervalMs: 50,
    }));
    const starts = lines.filter((l) => l.message === "projection worker starting");
    assert.deepEqual(starts.map((l) => [l.fields.partition, l.fields.segments]).sort(), [
      ["0/2", "0,2"],
      ["1/2", "1,3"],
    ]);
    assert.equal(starts[0].fields.from, "the start of the log (first run)");
    const progress = lines.filter((l) => l.message === "projection worker progress");
    assert.ok(progress.length >= 2, `${progress.length} progress lines`);
    for (const { fields } of progress) {
      assert.equal(typeof fields.rate, "number");
      assert.equal(typeof fields.lagEvents, "bigint");
      assert.equal(typeof fields.processed, "number");
    }
  });

  it("waitForProjections resolves only once the projection applied the append, though an older transaction commits late", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const table = inSchema(store, "applied");
    const controller = new AbortController();
    // B's handler is slow: a wait that trusted positions would resolve
    // after A (a higher position, an older transaction) and before B.
    const projection = readModelProjection(store, "p");
    const slow = {
      ...projection,
      async handle(
        e: Parameters<typeof projection.handle>[0],
        tx: Parameters<typeof projection.handle>[1],
      ) {
        if (e.aggregateId === "b") await sleep(400);
        await projection.handle(e, tx);
      },
    };
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 1, pollInterval: 10 });
    const running = processor.run(slow, { signal: controller.signal });
    try {
      // The older transaction takes its id first, appends last.
      const older = await holdTransaction(db.client({ max: 1 }));
      await older.tx`select pg_current_xact_id()`;
      const b = await store.append(db.sql, [event("b")]);
      await store.append(older.tx, [event("a")]);

      let resolved = false;
      const waiting = waitForProjections(db.sql, store, {
        after: b,
        projections: ["p"],
        timeoutMs: 20_000,
      }).then(() => resolved = true);
      await sleep(500);
      assert.equal(resolved, false, "resolved while the older transaction was open");
      await older.commit();
      await within(waiting, 20_000, "waitForProjections after the commit");
      const rows = await db.sql.unsafe(`select aggregate_id from ${table} order by 1`);
      assert.deepEqual(rows.map((r) => r.aggregate_id), ["a", "b"]);
    } finally {
      controller.abort();
      await within(running, 10_000, "the processor to stop");
    }

    await assert.rejects(
      waitForProjections(db.sql, store, {
        after: { transactionId: 1n << 40n, globalPosition: 1n },
        timeoutMs: 50,
      }),
      (e: unknown) => e instanceof ProjectionWaitTimeoutError && e.behind[0] === "p",
    );
    await assert.rejects(
      waitForProjections(db.sql, store, { after: {} as never }),
      (e: unknown) => e instanceof ValidationError && e.field === "options.after",
    );
  });
});
