import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type PersistedEvent, ProjectionError, segmentOf, ValidationError } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import {
  type ErrorPolicy,
  type Projection,
  ProjectionProcessor,
  replayParked,
} from "../src/projection/mod.ts";
import postgres from "postgres";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  checkpointRows,
  createReadModel,
  deferred,
  readModelProjection,
  waitUntil,
  within,
} from "./_projection.ts";

/** The parked-events rows of a projection, in log order. */
async function parkedRows(sql: postgres.Sql, store: PostgresStore, projection: string) {
  const rows = await sql.unsafe(
    `select global_position, aggregate_id, status, reason, error, attempts
     from ${store.tables.parkedEvents} where projection_name = $1 order by global_position`,
    [projection],
  );
  return rows.map((row) => ({
    position: BigInt(row.global_position as string),
    aggregateId: row.aggregate_id as string,
    status: row.status as string,
    reason: row.reason as string,
    error: row.error as string | null,
    attempts: row.attempts as number,
  }));
}

/**
 * The read model's projection, failing on `bad` events: `always` ones on
 * every call, the others on their first `times` calls. Counts the calls.
 */
function failingOn(
  store: PostgresStore,
  name: string,
  bad: { always?: readonly PersistedEvent[]; flaky?: readonly PersistedEvent[]; times?: number },
  onError?: ErrorPolicy,
): Projection & { calls: Map<bigint, number> } {
  const model = readModelProjection(store, name);
  const calls = new Map<bigint, number>();
  const always = new Set((bad.always ?? []).map((e) => e.globalPosition));
  const flaky = new Set((bad.flaky ?? []).map((e) => e.globalPosition));
  return {
    ...model,
    onError,
    calls,
    async handle(event, tx) {
      const n = (calls.get(event.globalPosition) ?? 0) + 1;
      calls.set(event.globalPosition, n);
      await model.handle(event, tx);
      if (always.has(event.globalPosition)) throw new Error(`poison ${event.globalPosition}`);
      if (flaky.has(event.globalPosition) && n <= (bad.times ?? 2)) throw new Error("flaky");
    },
  };
}

const ids = (events: readonly PersistedEvent[]) => events.map((e) => e.eventId);
const FAST = { initialMs: 1, maxMs: 5 };

describe("projection error policy", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("refuses a bad policy with a ValidationError before any SQL", async () => {
    // Nothing listens on port 1: any SQL would fail with a connection error.
    const nowhere = postgres("postgres://u@127.0.0.1:1/db", { max: 1, connect_timeout: 1 });
    const store = await db.freshStore();
    const handle = () => {};
    const bad: [unknown, string][] = [
      [{ retries: -1 }, "projection.onError.retries"],
      [{ retries: 1.5 }, "projection.onError.retries"],
      [{ then: "ignore" }, "projection.onError.then"],
      [{ backoff: { initialMs: 500, maxMs: 100 } }, "projection.onError.backoff.maxMs"],
      [{ backoff: { initialMs: -1 } }, "projection.onError.backoff.initialMs"],
      [{ park: "segment" }, "projection.onError.park"],
      [{ handlerTimeoutMs: 0 }, "projection.onError.handlerTimeoutMs"],
      [{ retry: 3 }, "projection.onError.retry"],
      ["park", "projection.onError"],
    ];
    for (const [onError, field] of bad) {
      const error = await caughtUp(new ProjectionProcessor(nowhere, store).run(
        { name: "p", handle, onError } as unknown as Projection,
        { mode: "until_caught_up" },
      )).then(() => assert.fail("run resolved"), (e: unknown) => e);
      assert.ok(error instanceof ValidationError, `${field}: ${error}`);
      assert.equal(error.field, field);
    }
    assert.throws(
      () => new ProjectionProcessor(nowhere, store, { onError: { then: "drop" as "skip" } }),
      (e: unknown) => e instanceof ValidationError && e.field === "onError.then",
    );
    await nowhere.end();
  });

  for (const then of ["stop", "skip", "park"] as const) {
    it(`${then}: retries that succeed apply every event once, in order`, async () => {
      const store = await db.freshStore();
      await createReadModel(db.sql, store);
      const appended = await appendEvents(db.sql, store, { aggregates: 3, perAggregate: 4 });
      const flaky = [appended[1], appended[6]];
      const projection = failingOn(store, `ok_${then}`, { flaky, times: 2 }, {
        retries: 2,
        backoff: FAST,
        then,
      });
      const outcome = await caughtUp(new ProjectionProcessor(db.sql, store, { batchSize: 5 })
        .run(projection, { mode: "until_caught_up" }));
      assert.equal(outcome.retried, 4);
      assert.equal(outcome.skipped + outcome.parked, 0);
      const applied = await appliedTimes(db.sql, store);
      assert.deepEqual([...applied.keys()], ids(appended));
      assert.ok([...applied.values()].every((times) => times === 1));
      for (const event of flaky) assert.equal(projection.calls.get(event.globalPosition), 3);
      assert.deepEqual(await parkedRows(db.sql, store, `ok_${then}`), []);
    });
  }

  it("stop: retries that never succeed reject with the ProjectionError, keeping what came before", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 8 });
    const poison = appended[5];
    const projection = failingOn(store, "stops", { always: [poison] }, {
      retries: 2,
      backoff: FAST,
    });
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 100 });
    const error = await caughtUp(processor.run(projection, { mode: "until_caught_up" }))
      .then(() => assert.fail("run resolved"), (e: unknown) => e);
    assert.ok(error instanceof ProjectionError);
    assert.deepEqual(error.event, poison);
    assert.equal(projection.calls.get(poison.globalPosition), 3);
    assert.deepEqual([...(await appliedTimes(db.sql, store)).keys()], ids(appended.slice(0, 5)));
    // The poison's segment stays before it; the others (without events) went on.
    const rows = await checkpointRows(db.sql, store, "stops");
    const segment = segmentOf(poison.aggregateId, 16);
    assert.equal(rows[segment].position, appended[4].globalPosition);
    assert.deepEqual(await parkedRows(db.sql, store, "stops"), []);
  });

  it("skip: records the event as skipped and goes on with its aggregate", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 5 });
    const poison = appended[2];
    const projection = failingOn(store, "skips", { always: [poison] }, {
      retries: 1,
      backoff: FAST,
      then: "skip",
    });
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store, { batchSize: 4 })
      .run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.skipped, 1);
    assert.equal(outcome.retried, 1);
    const expected = appended.filter((e) => e !== poison);
    assert.deepEqual([...(await appliedTimes(db.sql, store)).keys()], ids(expected));
    assert.deepEqual(await parkedRows(db.sql, store, "skips"), [{
      position: poison.globalPosition,
      aggregateId: poison.aggregateId,
      status: "skipped",
      reason: "failed",
      error: `Error: poison ${poison.globalPosition}`,
      attempts: 2,
    }]);
  });

  it("park: parks the event and holds its aggregate's later events behind it, in order", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 3, perAggregate: 4 });
    const poison = appended[5]; // acc-1, version 2
    const projection = failingOn(store, "parks", { always: [poison] }, { then: "park" });
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store, { batchSize: 3 })
      .run(projection, { mode: "until_caught_up" }));
    const held = appended.slice(6, 8); // acc-1, versions 3 and 4
    assert.equal(outcome.parked, 3);
    const expected = appended.filter((e) => e !== poison && !held.includes(e));
    assert.deepEqual([...(await appliedTimes(db.sql, store)).keys()], ids(expected));
    assert.deepEqual(
      (await parkedRows(db.sql, store, "parks")).map((r) => [r.position, r.reason, r.status]),
      [
        [poison.globalPosition, "failed", "parked"],
        [held[0].globalPosition, "held", "parked"],
        [held[1].globalPosition, "held", "parked"],
      ],
    );
    // Later events of the held aggregate wait too; other aggregates go on.
    const deposit = (aggregateId: string) => ({
      aggregateType: "Account",
      aggregateId,
      eventType: "Deposited",
      payload: new Uint8Array(),
    });
    const more = await store.append(db.sql, [deposit("acc-1")]);
    const other = await store.append(db.sql, [deposit("acc-0")]);
    await caughtUp(new ProjectionProcessor(db.sql, store, { batchSize: 3 })
      .run(projection, { mode: "until_caught_up" }));
    const parked = await parkedRows(db.sql, store, "parks");
    assert.deepEqual(parked.at(-1)?.position, more.events[0].globalPosition);
    assert.equal((await appliedTimes(db.sql, store)).get(other.events[0].eventId), 1);
  });

  it('park: "event" parks only the failing event', async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 4 });
    const poison = appended[1];
    const projection = failingOn(store, "parks_event", { always: [poison] }, {
      then: "park",
      park: "event",
    });
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store)
      .run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.parked, 1);
    const expected = appended.filter((e) => e !== poison);
    assert.deepEqual([...(await appliedTimes(db.sql, store)).keys()], ids(expected));
  });

  it("a segment that waits for a retry holds back only itself: the other segments go on", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 12, perAggregate: 3 });
    const poison = appended[4];
    const segment = segmentOf(poison.aggregateId, 4);
    const projection = failingOn(store, "waits", { always: [poison] }, {
      retries: 5,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const others = appended.filter((e) => segmentOf(e.aggregateId, 4) !== segment);
    const controller = new AbortController();
    const run = new ProjectionProcessor(db.sql, store, { segments: 4, batchSize: 5 })
      .run(projection, { signal: controller.signal });
    await waitUntil("the other segments' events to be applied", async () => {
      const applied = await appliedTimes(db.sql, store);
      return others.every((e) => applied.has(e.eventId));
    }, 20_000);
    controller.abort();
    const outcome = await within(run, 20_000, "the run to stop");
    assert.equal(outcome.retried, 1);
    assert.equal(projection.calls.get(poison.globalPosition), 1);
    const applied = await appliedTimes(db.sql, store);
    const behind = appended.filter((e) =>
      segmentOf(e.aggregateId, 4) === segment && e.globalPosition >= poison.globalPosition
    );
    for (const event of behind) assert.ok(!applied.has(event.eventId), `${event.globalPosition}`);
  });

  it("a handler that hangs past handlerTimeoutMs, or throws a non-Error, fails like a throw", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 4 });
    const model = readModelProjection(store, "hangs");
    const late = deferred<unknown>();
    const projection: Projection = {
      ...model,
      onError: { then: "park", park: "event", handlerTimeoutMs: 1000 },
      async handle(event, tx) {
        if (event.globalPosition === appended[1].globalPosition) {
          // Wakes right after its timeout, as the ROLLBACK goes out: the
          // transaction is over, this write must not land.
          await new Promise((resolve) => setTimeout(resolve, 1000));
          await Promise.resolve(model.handle(event, tx)).then(late.resolve, late.resolve);
          throw new Error("rejects after its transaction ended");
        }
        if (event.globalPosition === appended[2].globalPosition) throw "a string";
        await model.handle(event, tx);
      },
    };
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store)
      .run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.parked, 2);
    const refused = await within(late.promise, 10_000, "the late write");
    assert.ok(refused instanceof Error && /CONNECTION_CLOSED/.test(refused.message), `${refused}`);
    assert.deepEqual(
      [...(await appliedTimes(db.sql, store)).keys()],
      ids([appended[0], appended[3]]),
    );
    const parked = await parkedRows(db.sql, store, "hangs");
    assert.match(parked[0].error ?? "", /HandlerTimeoutError: .*1000 ms/);
    assert.equal(parked[1].error, "a string");
  });

  it("the database refusing the handler's SQL (a read model's missing table) stops the run, whatever the policy", async () => {
    // No createReadModel: every insert into `applied` fails with 42P01.
    const store = await db.freshStore();
    const appended = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 3 });
    const projection: Projection = {
      ...readModelProjection(store, "no_table"),
      onError: { retries: 1, backoff: FAST, then: "park" },
    };
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 100 });
    const error = await caughtUp(processor.run(projection, { mode: "until_caught_up" }))
      .then(() => assert.fail("run resolved"), (e: unknown) => e);
    assert.ok(error instanceof ProjectionError, String(error));
    assert.equal((error.cause as { code?: string }).code, "42P01");
    assert.deepEqual(error.event, appended[0]);
    // Nothing parked or skipped, no checkpoint moved: the log waits for the table.
    assert.deepEqual(await parkedRows(db.sql, store, "no_table"), []);
    for (const row of await checkpointRows(db.sql, store, "no_table")) {
      assert.equal(row.position, 0n, `segment ${row.segment}`);
    }
    // With the table there, the same run applies every event once.
    await createReadModel(db.sql, store);
    const outcome = await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.parked + outcome.skipped, 0);
    const applied = await appliedTimes(db.sql, store);
    assert.deepEqual([...applied.keys()].sort(), ids(appended).sort());
    assert.ok([...applied.values()].every((times) => times === 1));
  });

  it("a schema error in a batch handler is met again one event at a time, naming its event; replay rejects on it", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 4 });
    const culprit = appended[2];
    const model = readModelProjection(store, "batch_schema");
    // Only the culprit's write goes to a table that does not exist.
    const handle: Projection["handle"] = async (event, tx) => {
      if (event.globalPosition === culprit.globalPosition) {
        await tx.unsafe(`insert into ${store.tables.schema}.nowhere values (1)`);
      }
      await model.handle(event, tx);
    };
    const projection: Projection = {
      name: "batch_schema",
      onError: { then: "park" },
      handle,
      async handleBatch(events, tx) {
        for (const event of events) await handle(event, tx);
      },
    };
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 100 });
    const error = await caughtUp(processor.run(projection, { mode: "until_caught_up" }))
      .then(() => assert.fail("run resolved"), (e: unknown) => e);
    assert.ok(error instanceof ProjectionError, String(error));
    assert.equal((error.cause as { code?: string }).code, "42P01");
    assert.deepEqual(error.event, culprit);
    assert.deepEqual(await parkedRows(db.sql, store, "batch_schema"), []);

    // An event parked for its own fault, replayed by a handler whose table is gone.
    const parking: Projection = {
      ...model,
      name: "replay_schema",
      onError: { then: "park", park: "event" },
      async handle(event, tx) {
        if (event.globalPosition === culprit.globalPosition) throw new Error("bad data");
        await model.handle(event, tx);
      },
    };
    await caughtUp(processor.run(parking, { mode: "until_caught_up" }));
    const before = await parkedRows(db.sql, store, "replay_schema");
    assert.equal(before.length, 1);
    const gone: Projection = {
      ...parking,
      async handle(_event, tx) {
        await tx.unsafe(`insert into ${store.tables.schema}.nowhere values (1)`);
      },
    };
    await assert.rejects(
      within(replayParked(db.sql, store, gone), 20_000, "the replay"),
      (e: unknown) =>
        e instanceof ProjectionError && (e.cause as { code?: string }).code === "42P01",
    );
    assert.deepEqual(await parkedRows(db.sql, store, "replay_schema"), before, "untouched");
  });

  it("a class 42 error that one event's data can cause (a value of the wrong type) is the policy's", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 3 });
    const odd = appended[1];
    const model = readModelProjection(store, "typed_value");
    const projection: Projection = {
      ...model,
      onError: { then: "park", park: "event" },
      async handle(event, tx) {
        // postgres.js types the parameter from the value: boolean > integer
        // has no operator (42883) for this one event.
        const value = event.globalPosition === odd.globalPosition ? true : 1;
        await tx`select 1 where ${value} > 0`;
        await model.handle(event, tx);
      },
    };
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store)
      .run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.parked, 1);
    const [parked] = await parkedRows(db.sql, store, "typed_value");
    assert.equal(parked.position, odd.globalPosition);
    assert.deepEqual(
      [...(await appliedTimes(db.sql, store)).keys()],
      ids([appended[0], appended[2]]),
    );
  });

  it("a transient database error in a handler is no attempt and parks nothing", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 3 });
    const model = readModelProjection(store, "transient");
    let thrown = 0;
    const projection: Projection = {
      ...model,
      onError: { then: "park" },
      async handle(event, tx) {
        await model.handle(event, tx);
        if (event.globalPosition === appended[1].globalPosition && thrown++ < 2) {
          throw Object.assign(new Error("could not serialize access"), { code: "40001" });
        }
      },
    };
    const outcome = await caughtUp(new ProjectionProcessor(db.sql, store, { pollInterval: 5 })
      .run(projection, { mode: "until_caught_up" }));
    assert.equal(outcome.retries, 2);
    assert.equal(outcome.retried + outcome.parked, 0);
    assert.deepEqual([...(await appliedTimes(db.sql, store)).keys()], ids(appended));
    assert.deepEqual(await parkedRows(db.sql, store, "transient"), []);
  });
});
