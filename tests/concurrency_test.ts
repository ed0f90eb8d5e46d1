import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  type AppendResult,
  type ExpectedVersion,
  OptimisticConcurrencyError,
  type PostgresStore,
} from "../mod.ts";
import { backendPid, events, gate, setupDatabase, type TestDb, waitUntilBlocked } from "./_db.ts";

const WRITERS = 8;
const ROUNDS = 5;

describe("concurrent appends to one aggregate", () => {
  let db: TestDb;
  let writers: postgres.Sql[];
  let pids: number[];
  let blocker: postgres.Sql;
  before(async () => {
    db = await setupDatabase();
    writers = Array.from({ length: WRITERS }, () => db.client({ max: 1 }));
    pids = await Promise.all(writers.map(backendPid));
    blocker = db.client({ max: 1 });
  });
  after(() => db.close());

  /**
   * Appends from every writer at once. With `held`, a transaction holds the
   * aggregate's head row until every writer's statement is queued behind
   * it, so they really race for the same version.
   */
  async function race(
    store: PostgresStore,
    expected: (writer: number) => ExpectedVersion,
    count: number,
    held: boolean,
  ): Promise<PromiseSettledResult<AppendResult>[]> {
    const locked = gate();
    const release = gate();
    const holder = held
      ? blocker.begin(async (tx) => {
        await tx`select from ${tx(store.tables.aggregateHeads)}
                 where aggregate_type = 'Order' and aggregate_id = 'o-1' for update`;
        locked.open();
        await release.promise;
      })
      : (locked.open(), Promise.resolve());
    await locked.promise;
    const appends = Promise.allSettled(
      writers.map((sql, i) =>
        store.append(sql, events("o-1", count, { eventType: `W${i}` }), {
          expectedVersion: expected(i),
        })
      ),
    );
    if (held) await waitUntilBlocked(db.sql, pids);
    release.open();
    await holder;
    return await appends;
  }

  function fulfilled(results: PromiseSettledResult<AppendResult>[]): AppendResult[] {
    return results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  }

  it('"any": every writer succeeds and the versions are exactly 1..N', async () => {
    const store = await db.freshStore();
    // The first round creates the aggregate: eight inserts of its head race.
    const results = [...await race(store, () => "any", 3, false)];
    for (let round = 1; round < ROUNDS; round++) {
      results.push(...await race(store, () => "any", 3, true));
    }

    const total = WRITERS * ROUNDS * 3;
    assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
    const appended = fulfilled(results);
    for (const result of appended) {
      assert.deepEqual(
        result.events.map((e) => e.aggregateVersion),
        [1n, 2n, 3n].map((i) => result.fromVersion + i),
      );
    }
    const versions = appended.flatMap((r) => r.events.map((e) => e.aggregateVersion))
      .sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
    assert.deepEqual(versions, Array.from({ length: total }, (_, i) => BigInt(i + 1)));
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    assert.deepEqual(
      stream.events.map((e) => e.aggregateVersion),
      Array.from({ length: total }, (_, i) => BigInt(i + 1)),
    );
    assert.equal(new Set(stream.events.map((e) => e.globalPosition)).size, total);
    const [{ version }] = await db.sql`
      select aggregate_version::int as version from ${db.sql(store.tables.aggregateHeads)}`;
    assert.equal(version, total);
  });

  it("an exact version: one writer wins each version, the others get a conflict", async () => {
    const store = await db.freshStore();
    // Version 0n: eight writers race to create the aggregate.
    const rounds = [await race(store, () => 0n, 2, false)];
    for (let round = 1; round < ROUNDS; round++) {
      const version = BigInt(round * 2);
      rounds.push(await race(store, () => version, 2, true));
    }

    const winners: string[] = [];
    rounds.forEach((results, round) => {
      const expected = BigInt(round * 2);
      const won = fulfilled(results);
      assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
      assert.deepEqual([won[0].fromVersion, won[0].toVersion], [expected, expected + 2n]);
      winners.push(won[0].events[0].eventType);
      for (const result of results) {
        if (result.status === "fulfilled") continue;
        const error = result.reason;
        assert.ok(error instanceof OptimisticConcurrencyError, `round ${round}: ${error}`);
        assert.equal(error.expectedVersion, expected);
        assert.equal(error.actualVersion, expected + 2n);
      }
    });
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    assert.deepEqual(
      stream.events.map((e) => e.aggregateVersion),
      Array.from({ length: ROUNDS * 2 }, (_, i) => BigInt(i + 1)),
    );
    assert.deepEqual(
      stream.events.map((e) => e.eventType),
      winners.flatMap((w) => [w, w]),
    );
    const counts = await db.counts(store);
    assert.deepEqual([counts.events, counts.heads], [ROUNDS * 2, 1]);
  });

  it('"no_stream": exactly one of eight creators wins', async () => {
    const store = await db.freshStore();
    const results = await race(store, () => "no_stream", 1, false);

    assert.equal(fulfilled(results).length, 1);
    for (const result of results) {
      if (result.status === "fulfilled") continue;
      assert.ok(result.reason instanceof OptimisticConcurrencyError, String(result.reason));
      assert.equal(result.reason.actualVersion, 1n);
    }
    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 1n);
  });
});
