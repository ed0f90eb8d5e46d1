import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  fnv1a32,
  type PersistedEvent,
  ProjectionError,
  segmentOf,
  TransactionIdRegressionError,
  ValidationError,
} from "../src/es/mod.ts";
import { ownedSegments, type ProcessorConfig, ProjectionProcessor } from "../src/projection/mod.ts";
import postgres from "postgres";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  checkpointRows,
  createReadModel,
  readModelProjection,
} from "./_projection.ts";

const positions = (events: readonly PersistedEvent[]) => events.map((e) => e.globalPosition);

describe("projection processor", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("hashes aggregate ids with FNV-1a 32", () => {
    assert.equal(fnv1a32(""), 2166136261);
    assert.equal(fnv1a32("a"), 3826002220);
    assert.equal(fnv1a32("user-1"), 4115888500);
    assert.equal(fnv1a32("550e8400-e29b-41d4-a716-446655440000"), 2292069672);
    assert.equal(fnv1a32("user@example.com"), 3718907387);
  });

  it("assigns segments to partitions by modulo", () => {
    assert.deepEqual(ownedSegments(0, 1, 4), [0, 1, 2, 3]);
    assert.deepEqual(ownedSegments(1, 4, 16), [1, 5, 9, 13]);
    assert.deepEqual(ownedSegments(2, 3, 16), [2, 5, 8, 11, 14]);
    assert.deepEqual(ownedSegments(0, 16), [0]);
  });

  it("processes every event in log order and checkpoints each segment", async () => {
    const store = await db.freshStore();
    const appended = await appendEvents(db.sql, store, { aggregates: 5, perAggregate: 3 });
    const seen: PersistedEvent[] = [];
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 4 });
    await caughtUp(processor.run({ name: "basic", handle: (e) => void seen.push(e) }, {
      mode: "until_caught_up",
    }));
    assert.deepEqual(positions(seen), positions(appended));
    assert.deepEqual(seen[0], appended[0]);
    const last = appended.at(-1)!;
    const rows = await checkpointRows(db.sql, store, "basic");
    assert.deepEqual(
      rows,
      Array.from({ length: 16 }, (_, segment) => ({
        segment,
        segmentCount: 16,
        tx: last.transactionId,
        position: last.globalPosition,
      })),
    );
  });

  it("returns at once on an empty log, and resumes from its checkpoints", async () => {
    const store = await db.freshStore();
    const seen: PersistedEvent[] = [];
    const projection = { name: "resume", handle: (e: PersistedEvent) => void seen.push(e) };
    const processor = new ProjectionProcessor(db.sql, store);
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(seen, []);
    const first = await appendEvents(db.sql, store, { aggregates: 3, perAggregate: 2 });
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(positions(seen), positions(first));
    const second = await appendEvents(db.sql, store, {
      prefix: "late",
      aggregates: 2,
      perAggregate: 2,
    });
    seen.length = 0;
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(positions(seen), positions(second));
    seen.length = 0;
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(seen, []);
  });

  it("commits the events before a failing one, rejects with ProjectionError, redelivers it on rerun", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 6 });
    const boom = new Error("boom");
    const bad = appended[2];
    const delivered: bigint[] = [];
    const model = readModelProjection(store, "failing");
    const failing = {
      ...model,
      async handle(event: PersistedEvent, tx: Parameters<typeof model.handle>[1]) {
        delivered.push(event.globalPosition);
        await model.handle(event, tx);
        if (event.eventId === bad.eventId) throw boom;
      },
    };
    const errors: [string, Record<string, unknown> | undefined][] = [];
    const logger = {
      debug() {},
      info() {},
      error: (m: string, f?: Record<string, unknown>) => void errors.push([m, f]),
    };
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 10, logger });
    const error = await caughtUp(processor.run(failing, { mode: "until_caught_up" })).then(
      () => assert.fail("run resolved"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProjectionError);
    assert.equal(error.projection, "failing");
    assert.equal(error.cause, boom);
    assert.deepEqual(error.event, bad);
    // The failed transaction is rolled back whole, then the batch runs
    // again up to the failing event, which is not delivered again.
    assert.deepEqual(delivered, positions([...appended.slice(0, 3), ...appended.slice(0, 2)]));
    assert.deepEqual(errors.slice(0, 1), [["projection handler error", {
      projection: "failing",
      position: bad.globalPosition,
      transactionId: bad.transactionId,
      aggregateType: "Account",
      aggregateId: "acc-0",
      eventType: "Deposited",
      error: boom,
    }]]);
    const before = await appliedTimes(db.sql, store);
    assert.deepEqual([...before.keys()], appended.slice(0, 2).map((e) => e.eventId));
    assert.ok([...before.values()].every((times) => times === 1));
    const rows = await checkpointRows(db.sql, store, "failing");
    assert.ok(rows.every((row) => row.position === appended[1].globalPosition));

    delivered.length = 0;
    await caughtUp(processor.run(
      {
        ...model,
        async handle(event, tx) {
          delivered.push(event.globalPosition);
          await model.handle(event, tx);
        },
      },
      { mode: "until_caught_up" },
    ));
    assert.deepEqual(delivered, positions(appended.slice(2)));
    const applied = await appliedTimes(db.sql, store);
    assert.deepEqual([...applied.keys()], appended.map((e) => e.eventId));
    assert.ok([...applied.values()].every((times) => times === 1));
  });

  it("runs a handler that returns no promise, and fails the batch when it throws", async () => {
    const store = await db.freshStore();
    const appended = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 5 });
    const boom = new Error("sync boom");
    const seen: bigint[] = [];
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 4 });
    const throwing = {
      name: "sync",
      handle(event: PersistedEvent) {
        if (event.eventId === appended[6].eventId) throw boom;
        seen.push(event.globalPosition);
      },
    };
    const error = await caughtUp(processor.run(throwing, { mode: "until_caught_up" })).then(
      () => assert.fail("run resolved"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProjectionError);
    assert.equal(error.cause, boom);
    assert.deepEqual(error.event, appended[6]);
    // The first batch (4 events) committed, and the second up to its third event.
    const rows = await checkpointRows(db.sql, store, "sync");
    assert.ok(rows.every((row) => row.position === appended[5].globalPosition));

    seen.length = 0;
    await caughtUp(processor.run({
      name: "sync",
      handle: (e: PersistedEvent) => void seen.push(e.globalPosition),
    }, {
      mode: "until_caught_up",
    }));
    assert.deepEqual(seen, positions(appended.slice(6)));
  });

  it("reads only its scope, and still moves past events out of scope", async () => {
    const store = await db.freshStore();
    const a = await appendEvents(db.sql, store, {
      prefix: "a",
      aggregates: 3,
      perAggregate: 2,
      aggregateType: "A",
      eventType: "X",
    });
    const b = await appendEvents(db.sql, store, {
      prefix: "b",
      aggregates: 3,
      perAggregate: 2,
      aggregateType: "B",
      eventType: "X",
    });
    const c = await appendEvents(db.sql, store, {
      prefix: "c",
      aggregates: 2,
      perAggregate: 1,
      aggregateType: "A",
      eventType: "Y",
    });
    const run = async (
      name: string,
      scope: { aggregateTypes?: string[]; eventTypes?: string[] },
    ) => {
      const seen: PersistedEvent[] = [];
      await caughtUp(new ProjectionProcessor(db.sql, store, { batchSize: 3 }).run(
        { name, ...scope, handle: (e) => void seen.push(e) },
        { mode: "until_caught_up" },
      ));
      return positions(seen);
    };
    assert.deepEqual(await run("types_a", { aggregateTypes: ["A"] }), positions([...a, ...c]));
    assert.deepEqual(await run("events_x", { eventTypes: ["X"] }), positions([...a, ...b]));
    assert.deepEqual(
      await run("a_and_y", { aggregateTypes: ["A"], eventTypes: ["Y"] }),
      positions(c),
    );
    assert.deepEqual(
      await run("b_or_a", { aggregateTypes: ["B", "A"] }),
      positions([...a, ...b, ...c]),
    );
    // The tip was an event out of scope; the checkpoints passed it anyway.
    const last = c.at(-1)!;
    const rows = await checkpointRows(db.sql, store, "events_x");
    assert.ok(
      rows.every((row) => row.tx === last.transactionId && row.position === last.globalPosition),
    );
  });

  it("splits the log over 4 partitions: together exactly every event", async () => {
    const store = await db.freshStore();
    const appended = await appendEvents(db.sql, store, { aggregates: 40, perAggregate: 3 });
    const seen: PersistedEvent[][] = [[], [], [], []];
    await caughtUp(
      Promise.all(
        [0, 1, 2, 3].map((partitionKey) =>
          new ProjectionProcessor(db.sql, store, { partitionKey, totalPartitions: 4, batchSize: 7 })
            .run({ name: "split", handle: (e) => void seen[partitionKey].push(e) }, {
              mode: "until_caught_up",
            })
        ),
      ),
      "4 partitions to catch up",
    );
    for (const [key, events] of seen.entries()) {
      assert.ok(events.length > 0);
      assert.ok(events.every((e) => segmentOf(e.aggregateId, 16) % 4 === key));
    }
    const all = seen.flat().map((e) => e.globalPosition).sort((x, y) => (x < y ? -1 : 1));
    assert.deepEqual(all, positions(appended));
    const rows = await checkpointRows(db.sql, store, "split");
    assert.deepEqual(rows.map((r) => r.segment), Array.from({ length: 16 }, (_, i) => i));
    assert.ok(rows.every((r) => r.segmentCount === 16));
  });

  it("works on clients with column transforms and bigint types", async () => {
    const store = await db.freshStore();
    const appended = await appendEvents(db.sql, store, { aggregates: 4, perAggregate: 2 });
    const client = db.client({
      transform: postgres.camel,
      types: { bigint: postgres.BigInt },
    } as Record<string, unknown>);
    const seen: PersistedEvent[] = [];
    await caughtUp(new ProjectionProcessor(client, store, { batchSize: 3, totalPartitions: 2 }).run(
      { name: "camel", handle: (e) => void seen.push(e) },
      { mode: "until_caught_up" },
    ));
    await caughtUp(
      new ProjectionProcessor(client, store, {
        batchSize: 3,
        totalPartitions: 2,
        partitionKey: 1,
      })
        .run({ name: "camel", handle: (e) => void seen.push(e) }, { mode: "until_caught_up" }),
    );
    assert.deepEqual(
      new Set(seen.map((e) => e.eventId)),
      new Set(appended.map((e) => e.eventId)),
    );
    assert.equal(seen.length, appended.length);
  });

  it("refuses invalid configurations with ValidationError", async () => {
    const store = await db.freshStore();
    const bad: [ProcessorConfig, string][] = [
      [{ batchSize: 0 }, "batchSize"],
      [{ batchSize: 1.5 }, "batchSize"],
      [{ partitionKey: 2, totalPartitions: 2 }, "partitionKey"],
      [{ partitionKey: -1 }, "partitionKey"],
      [{ totalPartitions: 0 }, "totalPartitions"],
      [{ segments: 0 }, "segments"],
      [{ segments: 2.5 }, "segments"],
      [{ segments: 4, totalPartitions: 5 }, "totalPartitions"],
      [{ pollInterval: 0 }, "pollInterval"],
      [{ pollInterval: 100, maxPollInterval: 50 }, "maxPollInterval"],
    ];
    for (const [config, field] of bad) {
      assert.throws(
        () => new ProjectionProcessor(db.sql, store, config),
        (e: unknown) => e instanceof ValidationError && e.field === field,
        JSON.stringify(config),
      );
    }
    const silent = await db.freshStore({ notifyChannel: false });
    assert.throws(
      () => new ProjectionProcessor(db.sql, silent, { wakeUp: true }),
      (e: unknown) => e instanceof ValidationError && e.field === "wakeUp",
    );
    assert.equal(new ProjectionProcessor(db.sql, silent).config.wakeUp, false);
    const processor = new ProjectionProcessor(db.sql, store);
    await assert.rejects(
      processor.run({ name: "", handle() {} }),
      (e: unknown) => e instanceof ValidationError && e.field === "projection.name",
    );
    await assert.rejects(
      processor.run({ name: "p", aggregateTypes: [], handle() {} }),
      (e: unknown) => e instanceof ValidationError && e.field === "projection.aggregateTypes",
    );
  });

  it("refuses to run a projection with another segment count than its first run", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 1 });
    const projection = { name: "fixed", handle() {} };
    await caughtUp(new ProjectionProcessor(db.sql, store, { segments: 8 }).run(projection, {
      mode: "until_caught_up",
    }));
    await assert.rejects(
      caughtUp(
        new ProjectionProcessor(db.sql, store).run(projection, { mode: "until_caught_up" }),
      ),
      (e: unknown) =>
        e instanceof ValidationError && e.field === "segments" && e.expected.startsWith("8,") &&
        e.got === "16",
    );
    const rows = await checkpointRows(db.sql, store, "fixed");
    assert.deepEqual(rows.map((r) => r.segmentCount), Array(8).fill(8));
  });

  it("refuses a checkpoint ahead of the cluster's transaction ids", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 1 });
    const projection = { name: "restored", handle() {} };
    const processor = new ProjectionProcessor(db.sql, store);
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    await db.sql.unsafe(
      `update ${store.tables.checkpoints} set transaction_id = '999999999' where segment = 3`,
    );
    await assert.rejects(
      caughtUp(processor.run(projection, { mode: "until_caught_up" })),
      (e: unknown) =>
        e instanceof TransactionIdRegressionError && e.storedTransactionId === 999999999n,
    );
  });

  it("logs start, progress and stop through the logger", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 2 });
    const lines: [string, string, Record<string, unknown> | undefined][] = [];
    const logger = {
      debug: (m: string, f?: Record<string, unknown>) => void lines.push(["debug", m, f]),
      info: (m: string, f?: Record<string, unknown>) => void lines.push(["info", m, f]),
      error: (m: string, f?: Record<string, unknown>) => void lines.push(["error", m, f]),
    };
    await caughtUp(new ProjectionProcessor(db.sql, store, { logger, batchSize: 10 }).run(
      { name: "logged", handle() {} },
      { mode: "until_caught_up" },
    ));
    const info = lines.filter(([level]) => level === "info");
    assert.deepEqual(info[0], ["info", "projection processor starting", {
      projection: "logged",
      partitionKey: 0,
      totalPartitions: 1,
      batchSize: 10,
      segments: 16,
    }]);
    assert.equal(info[1][1], "events processed");
    assert.equal(info[1][2]?.processed, 4);
    assert.equal(info[1][2]?.skippedSegments, 0);
    assert.deepEqual(info.at(-1), ["info", "projection processor stopped", {
      projection: "logged",
      reason: "caught up",
    }]);
    assert.equal(info.length, 3);
  });
});
