/**
 * `appendMany`: several aggregates in one statement, all of it or nothing,
 * against a real PostgreSQL with real concurrent connections.
 */

import { after, before, describe, it, waitUntil, within } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  type AggregateAppend,
  DuplicateEventError,
  type ExpectedVersion,
  OptimisticConcurrencyError,
  type PostgresStore,
} from "../mod.ts";
import {
  backendPid,
  event,
  events,
  holdTransaction,
  json,
  setupDatabase,
  type TestDb,
  waitUntilBlocked,
} from "./_db.ts";
import { cuttingClient } from "./_cut.ts";

describe("appendMany", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  const entry = (
    id: string,
    count: number,
    expectedVersion?: ExpectedVersion,
  ): AggregateAppend => ({
    events: events(id, count),
    // A present but undefined expectedVersion is refused: omit it for "any".
    ...(expectedVersion === undefined ? {} : { expectedVersion }),
  });

  /**
   * Asserts that `attempt` fails with `kind` and left every table as it
   * was, and the sequence too when `kind` is a conflict.
   */
  async function assertRefused<E extends Error>(
    store: PostgresStore,
    attempt: () => Promise<unknown>,
    kind: new (...args: never[]) => E,
  ): Promise<E> {
    const before = await db.counts(store);
    const error = await attempt().then(
      (result) => assert.fail(`expected ${kind.name}, got ${JSON.stringify(result, String)}`),
      (error) => error,
    );
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${error}`);
    const after = await db.counts(store);
    // A conflict is found before a position is taken; a stored event id by
    // the unique constraint, after (a gap in positions, as any rollback).
    if (kind === DuplicateEventError as unknown) after.nextPosition = before.nextPosition;
    assert.deepEqual(after, before, "nothing written, no position taken by a conflict");
    return error;
  }

  it("stores every entry with its own versions, in the caller's order", async () => {
    const store = await db.freshStore();
    await store.append(db.sql, events("o-2", 3));
    // Entries in an order other than the lock order (type, then id).
    const results = await store.appendMany(db.sql, [
      entry("o-3", 2, "no_stream"),
      entry("o-2", 1, 3n),
      { events: [event("c-1", { aggregateType: "Customer" })], expectedVersion: 0n },
      entry("o-1", 1),
    ]);
    assert.deepEqual(
      results.map((
        r,
      ) => [r.events[0].aggregateType, r.events[0].aggregateId, r.fromVersion, r.toVersion]),
      [["Order", "o-3", 0n, 2n], ["Order", "o-2", 3n, 4n], ["Customer", "c-1", 0n, 1n], [
        "Order",
        "o-1",
        0n,
        1n,
      ]],
    );
    // One transaction, positions in the caller's order of the events.
    const all = results.flatMap((r) => r.events);
    assert.equal(new Set(all.map((e) => e.transactionId)).size, 1);
    const positions = all.map((e) => e.globalPosition);
    assert.deepEqual(positions, [...positions].sort((a, b) => (a < b ? -1 : 1)));
    // What the results say is what is stored.
    for (const result of results) {
      const { aggregateType, aggregateId } = result.events[0];
      const stream = await store.readAggregateStream(db.sql, aggregateType, aggregateId, {
        fromVersion: result.fromVersion + 1n,
      });
      assert.deepEqual(stream.events, result.events);
      assert.deepEqual(result.globalPositions, result.events.map((e) => e.globalPosition));
    }
    const heads = await db.sql`
      select aggregate_id, aggregate_version::int as v from ${db.sql(store.tables.aggregateHeads)}
      order by aggregate_id`;
    assert.deepEqual(heads.map((h) => [h.aggregate_id, h.v]), [
      ["c-1", 1],
      ["o-1", 1],
      ["o-2", 4],
      ["o-3", 2],
    ]);
  });

  it("round-trips every field and fills the same defaults as append", async () => {
    const store = await db.freshStore();
    const createdAt = new Date("2024-05-06T07:08:09.123Z");
    const full = event("o-1", {
      eventId: "0190a6e0-0000-7000-8000-0000000000AA",
      eventVersion: 3,
      metadata: { user: "u-1", tags: ["a", "b"], 'quote"key': "x,y{z}" },
      traceId: "t-1",
      correlationId: "c,1",
      causationId: 'say "hi"',
      createdAt,
      payload: new Uint8Array([0, 1, 2, 255, 92, 34, 44]),
    });
    const [withAll, bare] = await store.appendMany(db.sql, [
      { events: [full] },
      { events: [event("o-2")] },
    ]);
    const [stored] = (await store.readAggregateStream(db.sql, "Order", "o-1")).events;
    assert.deepEqual(stored, withAll.events[0]);
    assert.equal(stored.eventId, "0190a6e0-0000-7000-8000-0000000000aa");
    assert.deepEqual(stored.payload, full.payload);
    assert.deepEqual(stored.metadata, full.metadata);
    assert.deepEqual(
      [stored.eventVersion, stored.traceId, stored.correlationId, stored.causationId],
      [3, "t-1", "c,1", 'say "hi"'],
    );
    assert.equal(stored.createdAt.getTime(), createdAt.getTime());
    const [plain] = (await store.readAggregateStream(db.sql, "Order", "o-2")).events;
    assert.deepEqual(plain, bare.events[0]);
    assert.deepEqual(
      [plain.eventVersion, plain.metadata, plain.traceId, plain.correlationId, plain.causationId],
      [1, null, null, null, null],
    );
  });

  describe("expected versions, per entry", () => {
    const cases: [string, ExpectedVersion, number, bigint][] = [
      ['"no_stream" on an existing aggregate', "no_stream", 2, 2n],
      ["0n on an existing aggregate", 0n, 2, 2n],
      ['"stream_exists" on a missing aggregate', "stream_exists", 0, 0n],
      ["an exact version behind", 1n, 2, 2n],
      ["an exact version ahead", 3n, 2, 2n],
      ["an exact version on a missing aggregate", 1n, 0, 0n],
    ];
    for (const [what, expected, existing, actual] of cases) {
      it(`${what} refuses the whole append, named in the error`, async () => {
        const store = await db.freshStore();
        if (existing > 0) await store.append(db.sql, events("o-2", existing));
        // A valid entry before the refused one (in the caller's and the lock order).
        const error = await assertRefused(
          store,
          () =>
            store.appendMany(db.sql, [
              entry("o-1", 3, "no_stream"),
              entry("o-2", 1, expected),
              entry("o-3", 1, "any"),
            ]),
          OptimisticConcurrencyError,
        );
        assert.deepEqual(
          [error.aggregateType, error.aggregateId, error.expectedVersion, error.actualVersion],
          ["Order", "o-2", expected, actual],
        );
        assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 0n);
      });
    }

    it("accepts each form where it holds", async () => {
      const store = await db.freshStore();
      await store.append(db.sql, events("o-3", 2));
      await store.append(db.sql, events("o-4", 1));
      const results = await store.appendMany(db.sql, [
        entry("o-1", 1, "no_stream"),
        entry("o-2", 1, 0n),
        entry("o-3", 1, 2n),
        entry("o-4", 1, "stream_exists"),
        entry("o-5", 1, "any"),
        entry("o-3x", 1),
      ]);
      assert.deepEqual(results.map((r) => r.toVersion), [1n, 1n, 3n, 2n, 1n, 1n]);
    });

    it("names the first refused aggregate in lock order when several are refused", async () => {
      const store = await db.freshStore();
      await store.append(db.sql, events("o-1", 1));
      await store.append(db.sql, events("o-2", 1));
      const error = await assertRefused(
        store,
        () => store.appendMany(db.sql, [entry("o-2", 1, "no_stream"), entry("o-1", 1, 5n)]),
        OptimisticConcurrencyError,
      );
      assert.deepEqual([error.aggregateId, error.expectedVersion, error.actualVersion], [
        "o-1",
        5n,
        1n,
      ]);
    });
  });

  describe("in the caller's transaction", () => {
    it("commits and rolls back with it", async () => {
      const store = await db.freshStore();
      await db.sql.begin(async (tx) => {
        await store.appendMany(tx, [entry("o-1", 1), entry("o-2", 2)]);
      });
      const before = await db.counts(store);
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await store.appendMany(tx, [entry("o-3", 1), entry("o-1", 1, 1n)]);
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.equal((await db.counts(store)).events, before.events);
      assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 1n);
    });

    it("a refusal leaves the transaction usable, and nothing of the refused append stays", async () => {
      const store = await db.freshStore();
      await store.append(db.sql, events("o-1", 1));
      const committed = await db.sql.begin(async (tx) => {
        const first = await store.append(tx, events("o-9", 1));
        const error = await store.appendMany(tx, [entry("o-2", 1), entry("o-1", 1, "no_stream")])
          .catch((e) => e);
        assert.ok(error instanceof OptimisticConcurrencyError, `got ${error}`);
        assert.equal(error.actualVersion, 1n);
        const [second] = await store.appendMany(tx, [entry("o-1", 1, 1n)]);
        return [first, second];
      });
      assert.deepEqual(committed.map((r) => r.toVersion), [1n, 2n]);
      assert.equal((await store.readAggregateStream(db.sql, "Order", "o-2")).version, 0n);
    });

    it("keeps each aggregate in version order when an older transaction appends after a newer one", async () => {
      const store = await db.freshStore();
      const b = await holdTransaction(db.sql);
      await b.tx`select pg_current_xact_id()`;
      const [v1] = await store.appendMany(db.sql, [entry("o-1", 1, "no_stream")]);
      const [v2] = await store.appendMany(b.tx, [entry("o-1", 1, 1n), entry("o-2", 1)]);
      await b.commit();
      assert.equal(v2.events[0].transactionId, v1.events[0].transactionId);
      const log = await store.readEvents(db.sql);
      assert.deepEqual(
        log.filter((e) => e.aggregateId === "o-1").map((e) => e.aggregateVersion),
        [1n, 2n],
      );
    });
  });

  describe("event ids", () => {
    const ids = (n: number) =>
      Array.from({ length: n }, (_, i) => `0190a6e0-0000-7000-8000-${String(i).padStart(12, "0")}`);
    const withIds = (id: string, eventIds: string[], expectedVersion?: ExpectedVersion) => ({
      events: eventIds.map((eventId) => event(id, { eventId })),
      ...(expectedVersion === undefined ? {} : { expectedVersion }),
    });

    it("an exact retry returns the original results and stores nothing", async () => {
      const store = await db.freshStore();
      const [a, b, c] = ids(3);
      const appends = [withIds("o-2", [a, b], "no_stream"), withIds("o-1", [c], "no_stream")];
      const original = await store.appendMany(db.sql, appends);
      const before = await db.counts(store);
      const retried = await store.appendMany(db.sql, appends);
      assert.deepEqual(retried, original);
      const inTransaction = await db.sql.begin((tx) => store.appendMany(tx, appends));
      assert.deepEqual(inTransaction, original);
      assert.deepEqual(await db.counts(store), before);
    });

    it("an exact retry whose lookup loses the connection throws the connection's error", async () => {
      const store = await db.freshStore();
      const [a, b] = ids(2);
      const appends = [withIds("o-1", [a], "no_stream"), withIds("o-2", [b], "no_stream")];
      await store.appendMany(db.sql, appends);
      // Cut as the retry's lookup of the stored events is sent: after the
      // refusal, before the lookup reaches the server.
      const { sql: client, cutAt, cuts } = await cuttingClient(db);
      cutAt("select e.* from unnest");
      const error = await store.appendMany(client, appends).then(() => undefined, (e) => e);
      assert.equal(cuts(), 1, "the lookup was sent");
      assert.equal(error?.code, "CONNECTION_CLOSED", String(error));
      // The retry on a connection that works returns the original results.
      // (Not on the cut client: postgres.js may not reconnect after its
      // socket closed with a write pending, porsager/postgres#1215.)
      assert.equal((await store.appendMany(db.sql, appends)).length, 2);
    });

    it("any other reuse is a DuplicateEventError, never a conflict", async () => {
      const store = await db.freshStore();
      const [a, b, c] = ids(3);
      await store.append(db.sql, [event("o-1", { eventId: a })]);
      // Stored for o-1, reused for o-2.
      const moved = await assertRefused(
        store,
        () => store.appendMany(db.sql, [withIds("o-2", [a])]),
        DuplicateEventError,
      );
      assert.equal(moved.eventId, a);
      // An exact retry of o-1 bundled with a new entry is no retry.
      const bundled = await assertRefused(
        store,
        () => store.appendMany(db.sql, [withIds("o-1", [a], "no_stream"), withIds("o-3", [b])]),
        DuplicateEventError,
      );
      assert.equal(bundled.eventId, a);
      // Refused version and reused id together: the id wins.
      const both = await assertRefused(
        store,
        () => store.appendMany(db.sql, [withIds("o-1", [c, a], 7n)]),
        DuplicateEventError,
      );
      assert.equal(both.eventId, a);
    });
  });

  it("appends over the same aggregates in opposite orders queue instead of deadlocking", async () => {
    const store = await db.freshStore();
    const ids = Array.from({ length: 30 }, (_, i) => `o-${i}`);
    const all = (order: string[]) => order.map((id) => entry(id, 1));
    await store.appendMany(db.sql, all(ids));
    // A held transaction owns the middle head. Locking in the caller's
    // order, each racer would take its half, then wait on the middle one;
    // once it is free, each would need what the other holds.
    const holder = await holdTransaction(db.sql);
    await store.appendMany(holder.tx, all([ids[15]]));
    const racers = [db.client({ max: 1 }), db.client({ max: 1 })];
    const pids = await Promise.all(racers.map(backendPid));
    const raced = Promise.all([
      store.appendMany(racers[0], all(ids)),
      store.appendMany(racers[1], all([...ids].reverse())),
    ]);
    await waitUntilBlocked(db.sql, pids);
    await holder.commit();
    const [forward, backward] = await within(raced, 10_000, "both racers to finish");
    assert.deepEqual(
      [forward[15].toVersion, backward[14].toVersion].sort(),
      [3n, 4n],
      "the middle aggregate: created, the holder's append, then the two racers",
    );
    for (const id of ids) {
      const stream = await store.readAggregateStream(db.sql, "Order", id);
      assert.equal(stream.version, id === ids[15] ? 4n : 3n);
    }
  });

  it("with exact versions, one racer wins each round and the others get a conflict", async () => {
    const store = await db.freshStore();
    const clients = Array.from({ length: 4 }, () => db.client({ max: 1 }));
    for (let round = 0; round < 5; round++) {
      const version = BigInt(round);
      const outcomes = await Promise.allSettled(
        clients.map((sql) =>
          store.appendMany(sql, [entry("o-1", 1, version), entry("o-2", 1, version)])
        ),
      );
      const won = outcomes.filter((o) => o.status === "fulfilled");
      assert.equal(won.length, 1, `round ${round}: exactly one winner`);
      for (const lost of outcomes.filter((o) => o.status === "rejected")) {
        assert.ok((lost as PromiseRejectedResult).reason instanceof OptimisticConcurrencyError);
      }
    }
    const heads = await db.sql`
      select aggregate_version::int as v from ${db.sql(store.tables.aggregateHeads)}`;
    assert.deepEqual(heads.map((h) => h.v), [5, 5]);
  });

  it("wakes projections once per aggregate type, after the commit", async () => {
    const store = await db.freshStore({ notifyChannel: "many_test" });
    const heard: string[] = [];
    const listener = db.client({ max: 1 });
    await listener.listen("many_test", (type) => void heard.push(type));
    await store.appendMany(db.sql, [
      entry("o-1", 1),
      { events: [event("c-1", { aggregateType: "Customer", payload: json(1) })] },
    ]);
    await waitUntil("a NOTIFY for each of Order and Customer", () => heard.length >= 2, 5_000);
    assert.deepEqual(heard.sort(), ["Customer", "Order"]);
    heard.length = 0;
    await db.sql.begin((tx) => store.appendMany(tx, [entry("o-2", 1), entry("o-3", 1)]));
    await waitUntil(
      "a NOTIFY at the commit of appendMany in a transaction",
      () => heard.length >= 1,
      5_000,
    );
    assert.deepEqual(heard, ["Order"]);
  });
});
