import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type { PersistedEvent } from "../src/es/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { holdTransaction, json, setupDatabase, type TestDb } from "./_db.ts";
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

const positions = (events: readonly PersistedEvent[]) => events.map((e) => e.globalPosition);
const event = (aggregateId: string, i: number) => ({
  aggregateType: "Account",
  aggregateId,
  eventType: "Deposited",
  payload: json({ i }),
});

/** Resolves once `count()` reaches `n`; fails after `ms`, naming `what`. */
function until(
  count: () => number | Promise<number>,
  n: number,
  ms: number,
  what: string,
): Promise<void> {
  return waitUntil(what, async () => await count() >= n, ms);
}

describe("projection processor under concurrency", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("delivers an event that commits after a later one, in log order", async () => {
    const store = await db.freshStore();
    const seen: PersistedEvent[] = [];
    const projection = { name: "late", handle: (e: PersistedEvent) => void seen.push(e) };
    const processor = new ProjectionProcessor(db.sql, store);
    const writer = db.client();
    const open = deferred();
    const appendedA = deferred<PersistedEvent[]>();
    // Transaction A appends first and commits last.
    const a = writer.begin(async (tx) => {
      appendedA.resolve((await store.append(tx, [event("a", 1), event("a", 2)])).events);
      await open.promise;
    });
    const eventsA = await appendedA.promise;
    const eventsB = (await store.append(db.sql, [event("b", 1)])).events;
    assert.ok(eventsB[0].globalPosition > eventsA[1].globalPosition);
    // B is committed, but A is still open: B is not readable yet.
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(seen, []);
    open.resolve();
    await a;
    await caughtUp(processor.run(projection, { mode: "until_caught_up" }));
    assert.deepEqual(positions(seen), positions([...eventsA, ...eventsB]));
  });

  it("running continuously, holds later commits back until an earlier transaction commits", async () => {
    const store = await db.freshStore();
    const seen: PersistedEvent[] = [];
    const controller = new AbortController();
    const running = new ProjectionProcessor(db.sql, store, {
      pollInterval: 10,
      maxPollInterval: 20,
    })
      .run({ name: "held_back", handle: (e) => void seen.push(e) }, { signal: controller.signal });
    const first = (await store.append(db.sql, [event("first", 0)])).events;
    await until(() => seen.length, 1, 10_000, "the first event delivered");

    // P takes its transaction id first and commits an event last; E, the
    // early transaction, appends next and stays open; L commits after E.
    const p = await holdTransaction(db.client({ max: 1 }));
    await p.tx`select pg_current_xact_id()`;
    const e = await holdTransaction(db.client({ max: 1 }));
    const early = (await store.append(e.tx, [event("early", 0)])).events;
    const late = (await store.append(db.sql, [event("late", 0), event("late", 1)])).events;
    const fromP = (await store.append(p.tx, [event("p", 0)])).events;
    await p.commit();
    assert.ok(fromP[0].transactionId < early[0].transactionId);
    assert.ok(early[0].transactionId < late[0].transactionId);

    // P's event is below the safe horizon (E's id): the processor reads a
    // batch now, and that batch must stop at the horizon, before L's events.
    await until(() => seen.length, 2, 10_000, "P's event delivered while E is open");
    await new Promise((resolve) => setTimeout(resolve, 300)); // dozens of polls
    assert.deepEqual(positions(seen), positions([...first, ...fromP]), "nothing past E yet");

    await e.commit();
    await until(() => seen.length, 5, 10_000, "E's and L's events delivered after E commits");
    assert.deepEqual(positions(seen), positions([...first, ...fromP, ...early, ...late]));
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("delivers every event once, in version order, while commits interleave", async () => {
    const store = await db.freshStore();
    const writer = db.client({ max: 4 });
    const seen: PersistedEvent[] = [];
    const controller = new AbortController();
    const processor = new ProjectionProcessor(db.sql, store, { pollInterval: 5, batchSize: 5 });
    const running = processor.run({ name: "interleaved", handle: (e) => void seen.push(e) }, {
      signal: controller.signal,
    });
    const all: PersistedEvent[] = [];
    for (let round = 0; round < 8; round++) {
      const open = deferred();
      const appended = deferred();
      // A long transaction appends first and commits after several others.
      const long = writer.begin(async (tx) => {
        all.push(...(await store.append(tx, [event(`long-${round}`, 0)])).events);
        appended.resolve();
        await open.promise;
        all.push(...(await store.append(tx, [event(`long-${round}`, 1)])).events);
      });
      await appended.promise;
      for (let i = 0; i < 3; i++) {
        all.push(...(await store.append(writer, [event(`short-${i}`, round)])).events);
      }
      open.resolve();
      await long;
    }
    await until(() => seen.length, all.length, 20_000, "every event delivered");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
    assert.equal(seen.length, all.length);
    assert.deepEqual(
      new Set(seen.map((e) => e.eventId)),
      new Set(all.map((e) => e.eventId)),
    );
    const versions = new Map<string, bigint>();
    for (const e of seen) {
      assert.equal(e.aggregateVersion, (versions.get(e.aggregateId) ?? 0n) + 1n, e.aggregateId);
      versions.set(e.aggregateId, e.aggregateVersion);
    }
  });

  it("never applies an event twice with two processors of the same partition", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 30, perAggregate: 4 });
    const counts = [0, 0];
    const run = (i: number, signal?: AbortSignal, mode?: "until_caught_up") => {
      const client = db.client({ max: 2 });
      const model = readModelProjection(store, "twins");
      return new ProjectionProcessor(client, store, { batchSize: 3, pollInterval: 5 }).run({
        ...model,
        async handle(e, tx) {
          counts[i]++;
          await model.handle(e, tx);
          await tx`select pg_sleep(0.001)`;
        },
      }, { signal, mode });
    };
    // Both catch up at once over the same rows.
    await caughtUp(
      Promise.all([run(0, undefined, "until_caught_up"), run(1, undefined, "until_caught_up")]),
      "both twins to catch up",
    );
    let applied = await appliedTimes(db.sql, store);
    assert.equal(applied.size, 120);
    assert.ok([...applied.values()].every((times) => times === 1));
    assert.equal(counts[0] + counts[1], 120);

    // Both run on while events keep coming.
    const controller = new AbortController();
    const running = [run(0, controller.signal), run(1, controller.signal)];
    const more = [];
    for (let i = 0; i < 60; i++) {
      more.push(...(await store.append(db.sql, [event(`more-${i % 20}`, i)])).events);
    }
    await until(
      async () => (await appliedTimes(db.sql, store)).size,
      180,
      20_000,
      "every event applied",
    );
    controller.abort();
    await within(Promise.all(running), 10_000, "every worker to stop after the abort");
    applied = await appliedTimes(db.sql, store);
    assert.equal(applied.size, 180);
    assert.ok([...applied.values()].every((times) => times === 1));
    assert.equal(counts[0] + counts[1], 180);
  });

  it("on abort mid-batch resolves and rolls the batch back", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 4 });
    const model = readModelProjection(store, "aborted");
    const reached = deferred();
    const gate = deferred();
    const controller = new AbortController();
    const delivered: bigint[] = [];
    const running = new ProjectionProcessor(db.sql, store, { batchSize: 10 }).run({
      ...model,
      async handle(e, tx) {
        delivered.push(e.globalPosition);
        await model.handle(e, tx);
        if (e.aggregateVersion === 2n) {
          reached.resolve();
          await gate.promise;
        }
      },
    }, { signal: controller.signal });
    await reached.promise;
    controller.abort();
    gate.resolve();
    await within(running, 10_000, "the run to end after the abort");
    assert.deepEqual(delivered, positions(appended.slice(0, 2)));
    assert.equal((await appliedTimes(db.sql, store)).size, 0);
    const rows = await checkpointRows(db.sql, store, "aborted");
    assert.ok(rows.every((row) => row.tx === 0n && row.position === 0n));

    // An aborted signal stops a run before it starts; a new run redelivers.
    await new ProjectionProcessor(db.sql, store).run(model, { signal: AbortSignal.abort() });
    assert.equal((await appliedTimes(db.sql, store)).size, 0);
    await caughtUp(new ProjectionProcessor(db.sql, store).run(model, { mode: "until_caught_up" }));
    assert.deepEqual(
      [...(await appliedTimes(db.sql, store)).entries()],
      appended.map((e) => [e.eventId, 1]),
    );
  });

  it("stops an idle processor on abort and leaves no LISTEN behind", async () => {
    const store = await db.freshStore({ notifyChannel: "abort_test_channel" });
    const client = db.client();
    const controller = new AbortController();
    const running = new ProjectionProcessor(client, store, { pollInterval: 60_000 }).run(
      { name: "idle", handle() {} },
      { signal: controller.signal },
    );
    const listening = () =>
      db.sql`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and query = 'listen "abort_test_channel"'`
        .then(([row]) => row.n as number);
    await until(listening, 1, 10_000, "LISTEN set up");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
    const [{ n }] = await db.sql`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and query like 'unlisten%abort_test_channel%'`;
    assert.equal(n, 1);
    assert.equal(await listening(), 0);
  });
});
