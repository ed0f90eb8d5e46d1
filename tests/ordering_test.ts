/**
 * The ordering rule: a global position is taken when a row is inserted, not
 * when its transaction commits, so a reader that trusts
 * `global_position > checkpoint` skips events for good when transactions
 * commit out of order. These tests make that happen with real concurrent
 * transactions and show that the store's reader never skips nor repeats.
 */

import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type Cursor, type PersistedEvent, START, TransactionIdRegressionError } from "../mod.ts";
import { type PostgresStore, rebaseLog } from "../src/postgres/mod.ts";
import { event, holdTransaction, insertForeignEvent, setupDatabase, type TestDb } from "./_db.ts";

describe("the global log's order", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** A consumer of the store's log: keeps its cursor and everything it was handed. */
  function reader(store: PostgresStore) {
    let cursor: Cursor = START;
    const seen: PersistedEvent[] = [];
    return {
      seen,
      async poll(): Promise<PersistedEvent[]> {
        const page = await store.readEvents(db.sql, { after: cursor });
        const last = page.at(-1);
        if (last) {
          cursor = { transactionId: last.transactionId, globalPosition: last.globalPosition };
        }
        seen.push(...page);
        return page;
      },
    };
  }

  /** The Go original's reader: resumes after the highest global position it has seen. */
  function naiveReader(store: PostgresStore) {
    let checkpoint = 0n;
    const seen: bigint[] = [];
    return {
      seen,
      async poll(): Promise<bigint[]> {
        const rows = await db.sql`
          select global_position::text as position from ${db.sql(store.tables.events)}
          where global_position > ${String(checkpoint)}::bigint order by global_position`;
        const page = rows.map((row) => BigInt(row.position));
        if (page.length > 0) checkpoint = page.at(-1)!;
        seen.push(...page);
        return page;
      },
    };
  }

  const hold = (url?: string) => holdTransaction(db.client({ max: 1 }, url));

  it("delivers a transaction that commits late, which a position checkpoint skips", async () => {
    const store = await db.freshStore();
    const ours = reader(store);
    const naive = naiveReader(store);
    await store.append(db.sql, [event("o-0")]);
    assert.equal((await ours.poll()).length, 1);
    assert.deepEqual(await naive.poll(), [1n]);

    // A appends first, so it holds the lower position, and stays open.
    const a = await hold();
    const appendedA = await store.append(a.tx, [event("o-a")]);
    // B appends after A and commits first.
    const { events: [b] } = await store.append(db.sql, [event("o-b")]);
    const [eventA] = appendedA.events;
    assert.equal(eventA.globalPosition, 2n);
    assert.equal(b.globalPosition, 3n);
    assert.ok(eventA.transactionId < b.transactionId);

    // While A is open our reader hands out neither A nor B; the naive one takes B.
    assert.deepEqual(await ours.poll(), []);
    assert.deepEqual(await naive.poll(), [3n]);

    await a.commit();
    // A is committed now, but position 2 is behind the naive checkpoint: lost for good.
    assert.deepEqual(await naive.poll(), []);
    assert.deepEqual(naive.seen, [1n, 3n]);
    // Ours resumes from its cursor and gets A, then B, exactly once.
    assert.deepEqual((await ours.poll()).map((e) => e.aggregateId), ["o-a", "o-b"]);
    assert.deepEqual(await ours.poll(), []);
    assert.deepEqual(ours.seen.map((e) => e.globalPosition), [1n, 2n, 3n]);
    assert.deepEqual(ours.seen, await store.readEvents(db.sql));
  });

  it("keeps an aggregate in version order when an older transaction appends after a newer one", async () => {
    const store = await db.freshStore();
    const ours = reader(store);
    // B takes its transaction id first (by writing elsewhere), then waits.
    const b = await hold();
    await b.tx`create temporary table scratch (n int)`;
    await b.tx`insert into scratch values (1)`;
    // A, a newer transaction, appends version 1 and commits.
    const { events: [v1] } = await store.append(db.sql, [event("o-1")], {
      expectedVersion: "no_stream",
    });
    // B appends version 2 on top of it. Filed under B's own, older id, it
    // would come first in the log; the head row files it after version 1.
    const { events: [v2] } = await store.append(b.tx, [event("o-1")], { expectedVersion: 1n });
    const [[own]] = await b.tx`select pg_current_xact_id()::text`.values();
    assert.ok(BigInt(own) < v1.transactionId, "B's own id is the older one");
    assert.equal(v2.transactionId, v1.transactionId);
    assert.ok(v2.globalPosition > v1.globalPosition);
    assert.deepEqual(await ours.poll(), [], "B still holds the horizon");
    await b.commit();

    const page = await ours.poll();
    assert.deepEqual(page.map((e) => e.aggregateVersion), [1n, 2n]);
    assert.deepEqual(page.map((e) => e.globalPosition), [v1.globalPosition, v2.globalPosition]);
    const [head] = await db.sql`
      select last_transaction_id::text as last from ${db.sql(store.tables.aggregateHeads)}`;
    assert.equal(BigInt(head.last), v1.transactionId);
    // The next append of a newer transaction files under its own, greater id.
    const { events: [v3] } = await store.append(db.sql, [event("o-1")], { expectedVersion: 2n });
    assert.ok(v3.transactionId > v2.transactionId);
    assert.deepEqual((await ours.poll()).map((e) => e.aggregateVersion), [3n]);
  });

  it("orders by transaction id first: positions may come out of order, never skipped", async () => {
    const store = await db.freshStore();
    const ours = reader(store);
    // T1 takes its transaction id first, then appends after T2 did.
    const t1 = await hold();
    await t1.tx`select pg_current_xact_id()`;
    const { events: [x] } = await store.append(db.sql, [event("o-x")]);
    assert.deepEqual(await ours.poll(), []);
    const { events: [y] } = await store.append(t1.tx, [event("o-y")]);
    await t1.commit();

    assert.ok(y.transactionId < x.transactionId);
    assert.ok(y.globalPosition > x.globalPosition);
    const page = await ours.poll();
    assert.deepEqual(page.map((e) => e.aggregateId), ["o-y", "o-x"]);
    assert.deepEqual(page.map((e) => e.globalPosition), [2n, 1n]);
    assert.deepEqual(await ours.poll(), []);
    // Paging one event at a time resumes correctly across the inversion.
    const first = await store.readEvents(db.sql, { limit: 1 });
    const second = await store.readEvents(db.sql, {
      limit: 1,
      after: { transactionId: first[0].transactionId, globalPosition: first[0].globalPosition },
    });
    assert.deepEqual([...first, ...second], page);
  });

  it("a long writing transaction, even in another database, holds readers back", async () => {
    const store = await db.freshStore();
    const ours = reader(store);
    // A transaction that has not written has no transaction id: it holds nothing back.
    const idle = await hold();
    await idle.tx`select count(*) from pg_class`;
    await store.append(db.sql, [event("o-1")]);
    assert.deepEqual((await ours.poll()).map((e) => e.aggregateId), ["o-1"]);

    const elsewhere = await hold(await db.createDatabase());
    await elsewhere.tx`select pg_current_xact_id()`;
    await store.append(db.sql, [event("o-2")]);
    await store.append(db.sql, [event("o-3"), event("o-3")]);
    assert.deepEqual(await ours.poll(), []);
    assert.deepEqual(await ours.poll(), []);

    await elsewhere.commit();
    assert.deepEqual((await ours.poll()).map((e) => e.aggregateId), ["o-2", "o-3", "o-3"]);
    await idle.commit();
    assert.deepEqual(ours.seen.map((e) => e.globalPosition), [1n, 2n, 3n, 4n]);
  });

  it("refuses a cursor from the future (a restore into a new cluster)", async () => {
    const store = await db.freshStore();
    const { events: [stored] } = await store.append(db.sql, [event("o-1")]);
    const xmax = async () => {
      const [{ xmax }] = await db.sql`select pg_snapshot_xmax(pg_current_snapshot())::text as xmax`;
      return BigInt(xmax);
    };
    const before = await xmax();
    const future = before + 1_000_000n;
    const error = await store.readEvents(db.sql, {
      after: { transactionId: future, globalPosition: 1n },
    }).catch((error) => error);
    const afterwards = await xmax();

    assert.ok(error instanceof TransactionIdRegressionError, String(error));
    assert.equal(error.storedTransactionId, future);
    assert.ok(
      error.databaseTransactionId >= before - 1n && error.databaseTransactionId < afterwards,
      `databaseTransactionId ${error.databaseTransactionId} outside [${
        before - 1n
      }, ${afterwards})`,
    );
    assert.match(error.message, /moved into a new cluster.*migrate --rebase/);
    // A cursor at the last event, or at the newest transaction id, is fine.
    const atLast = { transactionId: stored.transactionId, globalPosition: stored.globalPosition };
    assert.deepEqual(await store.readEvents(db.sql, { after: atLast }), []);
    const newest = { transactionId: before - 1n, globalPosition: 1n << 62n };
    assert.deepEqual(await store.readEvents(db.sql, { after: newest }), []);
  });

  it("refuses a cursor at exactly the next transaction id, and takes one just below", async () => {
    const store = await db.freshStore();
    await store.append(db.sql, [event("o-1")]);
    // A repeatable-read transaction keeps one snapshot: the next
    // transaction id it reports stays put while the test reads, even if
    // other sessions spend ids meanwhile.
    await db.sql.begin("isolation level repeatable read", async (tx) => {
      const [{ next }] = await tx`select pg_snapshot_xmax(pg_current_snapshot())::text as next`;
      const databaseNext = BigInt(next);

      const at = { transactionId: databaseNext, globalPosition: 0n };
      const error = await store.readEvents(tx, { after: at }).catch((e) => e);
      assert.ok(error instanceof TransactionIdRegressionError, `got ${error}`);
      assert.equal(error.storedTransactionId, databaseNext);
      assert.equal(error.databaseTransactionId, databaseNext - 1n);
      await assert.rejects(store.assertCursorInCluster(tx, at), TransactionIdRegressionError);

      const below = { transactionId: databaseNext - 1n, globalPosition: 1n << 62n };
      assert.deepEqual(await store.readEvents(tx, { after: below }), []);
      await store.assertCursorInCluster(tx, below);
    });
  });

  it("a rebase reaches sessions whose cached plans folded the old offset in", async () => {
    const store = await db.freshStore();
    // One connection, its statements prepared: after five runs PostgreSQL
    // may keep a generic plan, with the offset folded in as a constant.
    const session = db.client({ max: 1 });
    await session`set plan_cache_mode = force_generic_plan`;
    for (let i = 0; i < 6; i++) await store.append(session, [event(`warm-${i}`)]);
    assert.equal((await store.readEvents(session, { after: START })).length, 6);

    // Foreign history far above this cluster's ids, as after a move.
    const foreign = await insertForeignEvent(db.sql, store);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the session's trusted second
    await assert.rejects(store.append(session, [event("o-1")]), TransactionIdRegressionError);

    assert.equal((await rebaseLog(db.sql, { store })).rebased, true);
    // The same connection, the same prepared statements: the new offset.
    const { events: [after] } = await store.append(session, [event("o-1")]);
    assert.ok(after.transactionId > foreign, `${after.transactionId} <= ${foreign}`);
    const log = await store.readEvents(session, { after: START });
    assert.deepEqual(log.map((e) => e.aggregateId).slice(-2), ["moved", "o-1"]);
  });

  it("a rebase waits for the transactions writing to the log: none appends with the old offset after it", async () => {
    const store = await db.freshStore();
    // A caller's transaction that has appended holds its lock on the
    // events table; its cached plans would not see the rebase.
    const writer = await holdTransaction(db.client({ max: 1 }));
    await store.append(writer.tx, [event("open-1")]);
    const foreign = await insertForeignEvent(db.sql, store);

    const rebaser = db.client({ max: 1 });
    const [{ pid }] = await rebaser`select pg_backend_pid() as pid`;
    const rebase = rebaseLog(rebaser, { store });
    await waitUntil("the rebase to wait for the open writer's lock", async () => {
      const [row] = await db.sql`select wait_event_type from pg_stat_activity where pid = ${pid}`;
      return row?.wait_event_type === "Lock";
    }, 10_000);
    await writer.commit();
    assert.equal((await rebase).rebased, true);

    const { events: [later] } = await store.append(db.sql, [event("after-1")]);
    assert.ok(later.transactionId > foreign, `${later.transactionId} <= ${foreign}`);
  });
});
