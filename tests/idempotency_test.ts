import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  type AppendResult,
  DuplicateEventError,
  type Event,
  type ExpectedVersion,
  type PostgresStore,
  uuidv7,
} from "../mod.ts";
import {
  backendPid,
  event,
  gate,
  holdTransaction,
  setupDatabase,
  type TestDb,
  waitUntilBlocked,
} from "./_db.ts";
import { cuttingClient } from "./_cut.ts";

describe("idempotent appends", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  const withId = (aggregateId: string, eventType: string): Event =>
    event(aggregateId, { eventType, eventId: uuidv7(), metadata: { b: 1, a: [eventType] } });

  /**
   * The rows of the store's tables. A stored event id is found by the
   * unique constraint, after the insert took its positions: a retry or a
   * duplicate leaves a gap in positions (as any rollback does), no row.
   */
  async function written(store: PostgresStore): Promise<{ events: number; heads: number }> {
    const { events, heads } = await db.counts(store);
    return { events, heads };
  }

  /** Asserts that `attempt` throws DuplicateEventError for `eventId` and writes nothing. */
  async function assertDuplicate(
    store: PostgresStore,
    attempt: () => Promise<unknown>,
    eventId: string,
  ): Promise<DuplicateEventError> {
    const before = await written(store);
    const error = await attempt().then(
      () => assert.fail("expected a DuplicateEventError"),
      (error) => error,
    );
    assert.ok(error instanceof DuplicateEventError, String(error));
    assert.equal(error.eventId, eventId);
    assert.deepEqual(await written(store), before);
    return error;
  }

  it("returns the original result when the same events are appended again", async () => {
    const store = await db.freshStore();
    const [e1, e2, e3] = [withId("o-1", "E1"), withId("o-1", "E2"), withId("o-1", "E3")];
    const first = await store.append(db.sql, [e1, e2], { expectedVersion: "no_stream" });
    const second = await store.append(db.sql, [e3], { expectedVersion: 2n });
    const counts = await written(store);

    assert.deepEqual(
      await store.append(db.sql, [e1, e2], { expectedVersion: "no_stream" }),
      first,
    );
    for (const expectedVersion of [2n, "any", "stream_exists"] as ExpectedVersion[]) {
      assert.deepEqual(await store.append(db.sql, [e3], { expectedVersion }), second);
    }
    // Ids are UUIDs: a retry that spells them in capitals is the same retry.
    const shouted = [e1, e2].map((e) => ({ ...e, eventId: e.eventId!.toUpperCase() }));
    assert.deepEqual(await store.append(db.sql, shouted, { expectedVersion: 0n }), first);
    assert.deepEqual(await written(store), counts);
    assert.deepEqual(first.globalPositions, [1n, 2n]);
    assert.deepEqual(second.globalPositions, [3n]);
  });

  it("returns what is stored, whatever else the retry carries", async () => {
    const store = await db.freshStore();
    const original = withId("o-1", "E1");
    const first = await store.append(db.sql, [original]);
    const retried = await store.append(db.sql, [{ ...original, eventType: "Changed" }]);
    assert.deepEqual(retried, first);
    assert.equal(retried.events[0].eventType, "E1");
  });

  it("treats a stored run of the events, at its versions, as a retry too", async () => {
    const store = await db.freshStore();
    const [e1, e2] = [withId("o-1", "E1"), withId("o-1", "E2")];
    const { events: [stored1, stored2] } = await store.append(db.sql, [e1, e2]);
    const counts = await written(store);

    const tail = await store.append(db.sql, [e2], { expectedVersion: 1n });
    assert.deepEqual(tail, {
      events: [stored2],
      globalPositions: [2n],
      fromVersion: 1n,
      toVersion: 2n,
    });
    const head = await store.append(db.sql, [e1], { expectedVersion: "no_stream" });
    assert.deepEqual(head, {
      events: [stored1],
      globalPositions: [1n],
      fromVersion: 0n,
      toVersion: 1n,
    });
    assert.deepEqual(await written(store), counts);
  });

  it("in a caller's transaction, a retry or a duplicate writes nothing and leaves it usable", async () => {
    // There a unique violation would abort the caller's transaction: the
    // append skips the stored ids and undoes the rest of what it wrote.
    const store = await db.freshStore();
    const stored = [withId("o-1", "E1"), withId("o-1", "E2")];
    const first = await store.append(db.sql, stored, { expectedVersion: "no_stream" });
    const counts = await written(store);
    const fresh = withId("o-1", "E3");
    const later = await db.sql.begin(async (tx) => {
      for (const expectedVersion of ["any", 0n, "no_stream"] as ExpectedVersion[]) {
        assert.deepEqual(await store.append(tx, stored, { expectedVersion }), first);
      }
      // A stored id with a new one: on the same aggregate (its head moved,
      // then back) and on a new one (its head created, then deleted).
      for (const [aggregateId, expectedVersion] of [["o-1", "any"], ["o-2", "any"]] as const) {
        const reused = { ...stored[1], aggregateId };
        await assertDuplicate(
          store,
          () => store.append(tx, [withId(aggregateId, "E0"), reused], { expectedVersion }),
          reused.eventId!,
        );
      }
      return await store.append(tx, [fresh], { expectedVersion: 2n });
    });
    assert.deepEqual(await written(store), { events: counts.events + 1, heads: counts.heads });
    assert.equal(later.toVersion, 3n);
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    assert.deepEqual(stream.events.map((e) => e.eventId), [...stored, fresh].map((e) => e.eventId));
  });

  it("refuses a partial overlap with a stored append", async () => {
    const store = await db.freshStore();
    const [e1, e2, e3] = [withId("o-1", "E1"), withId("o-1", "E2"), withId("o-1", "E3")];
    await store.append(db.sql, [e1, e2]);

    await assertDuplicate(store, () => store.append(db.sql, [e2, e3]), e2.eventId!);
    await assertDuplicate(store, () => store.append(db.sql, [e3, e1]), e1.eventId!);
    await assertDuplicate(
      store,
      () => store.append(db.sql, [e1, e2, e3], { expectedVersion: "no_stream" }),
      e1.eventId!,
    );
    await assertDuplicate(store, () => store.append(db.sql, [e1, event("o-1")]), e1.eventId!);
  });

  it("refuses a stored id on another aggregate, and says where it is stored", async () => {
    const store = await db.freshStore();
    const e1 = withId("o-1", "E1");
    await store.append(db.sql, [e1]);

    const error = await assertDuplicate(
      store,
      () => store.append(db.sql, [{ ...e1, aggregateId: "o-2" }]),
      e1.eventId!,
    );
    assert.equal(
      error.message,
      `Duplicate event id ${e1.eventId}: expected a new id or an exact retry of the append ` +
        `that stored it, got an event already stored as Order "o-1" version 1`,
    );
    await assertDuplicate(
      store,
      () => store.append(db.sql, [{ ...e1, aggregateType: "Invoice" }]),
      e1.eventId!,
    );
  });

  it("refuses a stored id at other versions or in another order", async () => {
    const store = await db.freshStore();
    const [e1, e2] = [withId("o-1", "E1"), withId("o-1", "E2")];
    await store.append(db.sql, [e1, e2], { expectedVersion: "no_stream" });

    await assertDuplicate(
      store,
      () => store.append(db.sql, [e1, e2], { expectedVersion: 2n }),
      e1.eventId!,
    );
    await assertDuplicate(
      store,
      () => store.append(db.sql, [e2], { expectedVersion: "no_stream" }),
      e2.eventId!,
    );
    await assertDuplicate(store, () => store.append(db.sql, [e2, e1]), e2.eventId!);
  });

  it("throws the connection's error when the lookup after a concurrent insert of its id loses it", async () => {
    const store = await db.freshStore();
    const stored = withId("o-1", "E1");
    // Another transaction inserts the id and stays open; this append's
    // insert waits on it, then fails on the unique id once it commits.
    const other = await holdTransaction(db.client({ max: 1 }));
    await store.append(other.tx, [stored]);
    const { sql, cutAt, cuts } = await cuttingClient(db);
    const pid = await backendPid(sql);
    // The cut comes as the append looks up what the other stored.
    cutAt("select e.* from unnest");
    const appending = store.append(sql, [{ ...stored, aggregateId: "o-2" }]).then(
      () => undefined,
      (error) => error,
    );
    await waitUntilBlocked(db.sql, [pid]);
    await other.commit();
    const error = await appending;
    assert.equal(cuts(), 1, "the lookup was sent");
    assert.equal(error?.code, "CONNECTION_CLOSED", String(error));
    // On a connection that works, the same append is told where the id is
    // (not on the cut client: postgres.js may not reconnect after its socket
    // closed with a write pending, porsager/postgres#1215).
    await assertDuplicate(
      store,
      () => store.append(db.sql, [{ ...stored, aggregateId: "o-2" }]),
      stored.eventId!,
    );
  });

  describe("the same ids from two connections at once", () => {
    let writers: postgres.Sql[];
    let pids: number[];
    let blocker: postgres.Sql;
    before(async () => {
      writers = [db.client({ max: 1 }), db.client({ max: 1 })];
      pids = await Promise.all(writers.map(backendPid));
      blocker = db.client({ max: 1 });
    });

    const cases = [
      ['"any"', "any", true],
      ["an exact version", 1n, true],
      ['"stream_exists"', "stream_exists", true],
      ['"no_stream"', "no_stream", false],
      ['"any" on a new aggregate', "any", false],
    ] as const;
    const modes = [
      // A plain client can look at what the other stored: both get the result.
      ["on plain clients", false, "both get the one result"],
      // A unique violation aborts the caller's transaction: it may only be told.
      ["in transactions", true, "the other gets that result or DuplicateEventError"],
    ] as const;
    for (const [name, expected, existing] of cases) {
      for (const [mode, inTransaction, outcome] of modes) {
        it(`${name} ${mode}: one stores them, ${outcome}`, async () => {
          const store = await db.freshStore();
          if (existing) await store.append(db.sql, [event("o-1")]);
          const retry = [withId("o-1", "E1"), withId("o-1", "E2")];
          const append = (sql: postgres.Sql) =>
            inTransaction
              ? sql.begin((tx) => store.append(tx, retry, { expectedVersion: expected }))
              : store.append(sql, retry, { expectedVersion: expected });

          let results: PromiseSettledResult<AppendResult>[];
          if (existing) {
            // Both statements queue behind a transaction holding the head row.
            const locked = gate();
            const release = gate();
            const holder = blocker.begin(async (tx) => {
              await tx`select from ${tx(store.tables.aggregateHeads)} for update`;
              locked.open();
              await release.promise;
            });
            await locked.promise;
            const racing = Promise.allSettled(writers.map(append));
            await waitUntilBlocked(db.sql, pids);
            release.open();
            await holder;
            results = await racing;
          } else {
            results = await Promise.allSettled(writers.map(append));
          }

          const won = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
          assert.ok(won.length >= 1, `no writer succeeded: ${results.map((r) => r.status)}`);
          if (!inTransaction) assert.equal(won.length, 2, String(results.map((r) => r.status)));
          for (const result of won) assert.deepEqual(result, won[0]);
          for (const result of results) {
            if (result.status === "fulfilled") continue;
            assert.ok(result.reason instanceof DuplicateEventError, String(result.reason));
            assert.ok(
              retry.some((e) => e.eventId === result.reason.eventId),
              result.reason.eventId,
            );
          }
          const base = existing ? 1n : 0n;
          assert.deepEqual(won[0].events.map((e) => e.aggregateVersion), [base + 1n, base + 2n]);
          const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
          assert.deepEqual(
            stream.events.slice(Number(base)).map((e) => e.eventId),
            retry.map((e) => e.eventId),
          );
          assert.equal(stream.version, base + 2n);
        });
      }
    }
  });
});
