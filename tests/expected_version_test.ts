import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  type ExpectedVersion,
  OptimisticConcurrencyError,
  type PostgresStore,
  PupsourcingError,
} from "../mod.ts";
import { event, events, setupDatabase, type TestDb } from "./_db.ts";

describe("expected versions", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  const append = (store: PostgresStore, id: string, count: number, expected: ExpectedVersion) =>
    store.append(db.sql, events(id, count), { expectedVersion: expected });

  /** Asserts that `attempt` is refused as a conflict at `actual` and wrote nothing at all. */
  async function assertConflict(
    store: PostgresStore,
    attempt: () => Promise<unknown>,
    expected: ExpectedVersion,
    actual: bigint,
  ): Promise<OptimisticConcurrencyError> {
    const before = await db.counts(store);
    const error = await attempt().then(
      (result) => assert.fail(`expected a conflict, got ${JSON.stringify(result, String)}`),
      (error) => error,
    );
    assert.ok(error instanceof OptimisticConcurrencyError, `got ${error}`);
    assert.equal(error.expectedVersion, expected);
    assert.equal(error.actualVersion, actual);
    assert.deepEqual(await db.counts(store), before);
    return error;
  }

  it('"any" never conflicts, on a new or an existing aggregate', async () => {
    const store = await db.freshStore();
    const first = await append(store, "o-1", 2, "any");
    const second = await append(store, "o-1", 1, "any");
    assert.deepEqual([first.fromVersion, first.toVersion], [0n, 2n]);
    assert.deepEqual([second.fromVersion, second.toVersion], [2n, 3n]);
  });

  it('"no_stream" creates the aggregate once; the second is a conflict', async () => {
    const store = await db.freshStore();
    await append(store, "o-1", 2, "no_stream");
    await assertConflict(store, () => append(store, "o-1", 1, "no_stream"), "no_stream", 2n);
  });

  it('"stream_exists" refuses a missing aggregate and accepts an existing one', async () => {
    const store = await db.freshStore();
    await assertConflict(
      store,
      () => append(store, "o-1", 1, "stream_exists"),
      "stream_exists",
      0n,
    );
    await append(store, "o-1", 1, "any");
    const result = await append(store, "o-1", 2, "stream_exists");
    assert.deepEqual([result.fromVersion, result.toVersion], [1n, 3n]);
  });

  it("an exact version must be the aggregate's version, neither behind nor ahead", async () => {
    const store = await db.freshStore();
    await assertConflict(store, () => append(store, "o-1", 1, 1n), 1n, 0n);
    await append(store, "o-1", 2, "no_stream");
    const result = await append(store, "o-1", 1, 2n);
    assert.deepEqual([result.fromVersion, result.toVersion], [2n, 3n]);
    await assertConflict(store, () => append(store, "o-1", 1, 2n), 2n, 3n);
    await assertConflict(store, () => append(store, "o-1", 1, 4n), 4n, 3n);
    assert.equal((await append(store, "o-1", 1, 3n)).toVersion, 4n);
  });

  it("0n behaves as no_stream", async () => {
    const store = await db.freshStore();
    const created = await append(store, "o-1", 1, 0n);
    assert.deepEqual([created.fromVersion, created.toVersion], [0n, 1n]);
    await assertConflict(store, () => append(store, "o-1", 1, 0n), 0n, 1n);
  });

  it("reserves a natural key once (an email as the aggregate id)", async () => {
    const store = await db.freshStore();
    const reserve = () =>
      store.append(db.sql, [event("ada@example.com", { aggregateType: "EmailReservation" })], {
        expectedVersion: "no_stream",
      });
    await reserve();
    await assertConflict(store, reserve, "no_stream", 1n);
  });

  it("the error carries the aggregate and both versions, and says them", async () => {
    const store = await db.freshStore();
    await append(store, "o-1", 3, "any");
    const exact = await assertConflict(store, () => append(store, "o-1", 1, 1n), 1n, 3n);
    assert.equal(exact.name, "OptimisticConcurrencyError");
    assert.ok(exact instanceof PupsourcingError);
    assert.equal(exact.aggregateType, "Order");
    assert.equal(exact.aggregateId, "o-1");
    assert.equal(
      exact.message,
      'Optimistic concurrency conflict on Order "o-1": expected version 1n, got version 3n',
    );
    const named = await assertConflict(
      store,
      () => append(store, "o-1", 1, "no_stream"),
      "no_stream",
      3n,
    );
    assert.equal(
      named.message,
      'Optimistic concurrency conflict on Order "o-1": expected version "no_stream", got version 3n',
    );
  });

  it("a conflict takes no global position: the next append gets the next one", async () => {
    const store = await db.freshStore();
    const first = await append(store, "o-1", 2, "no_stream");
    assert.deepEqual(first.globalPositions, [1n, 2n]);
    await assertConflict(store, () => append(store, "o-1", 3, "no_stream"), "no_stream", 2n);
    await assertConflict(store, () => append(store, "o-1", 3, 0n), 0n, 2n);
    await assertConflict(store, () => append(store, "o-1", 3, 1n), 1n, 2n);
    await assertConflict(
      store,
      () => append(store, "o-2", 3, "stream_exists"),
      "stream_exists",
      0n,
    );
    await assertConflict(store, () => append(store, "o-2", 3, 7n), 7n, 0n);
    const next = await append(store, "o-2", 1, "any");
    assert.deepEqual(next.globalPositions, [3n]);
  });

  it("a conflict inside the caller's transaction rejects it and leaves nothing", async () => {
    const store = await db.freshStore();
    await append(store, "o-1", 1, "any");
    const error = await db.sql.begin(async (tx) => {
      await store.append(tx, [event("o-2")]);
      await store.append(tx, [event("o-1")], { expectedVersion: 5n });
    }).catch((error) => error);

    assert.ok(error instanceof OptimisticConcurrencyError);
    assert.deepEqual([error.expectedVersion, error.actualVersion], [5n, 1n]);
    const counts = await db.counts(store);
    assert.deepEqual([counts.events, counts.heads], [1, 1]);
    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-2")).version, 0n);
  });

  it("the caller's transaction stays usable after a conflict it catches", async () => {
    const store = await db.freshStore();
    await append(store, "o-1", 1, "any");
    const result = await db.sql.begin(async (tx) => {
      const conflict = await store.append(tx, [event("o-1")], { expectedVersion: "no_stream" })
        .catch((error) => error);
      assert.ok(conflict instanceof OptimisticConcurrencyError);
      return await store.append(tx, [event("o-1")], { expectedVersion: conflict.actualVersion });
    });
    assert.deepEqual([result.fromVersion, result.toVersion], [1n, 2n]);
    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 2n);
  });
});
