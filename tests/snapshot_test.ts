/**
 * Snapshots: written in the append's transaction when it crosses a
 * multiple of `every`, used when fresh, skipped when of another shape
 * version, never ahead of the stream. In PostgreSQL and in memory.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  aggregateStream,
  type EventStore,
  handleCommand,
  InMemoryStore,
  type ReadStreamOptions,
  type SnapshotStore,
} from "../src/es/mod.ts";
import { PostgresSnapshotStore } from "../src/postgres/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { deposit, open, options } from "./_bank.ts";

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());

const account = { aggregateType: "Account", aggregateId: "a" };

/** `store`, recording the `fromVersion` of each stream read and how many events it returned. */
function recording<D>(store: EventStore<D>) {
  const reads: { from: bigint | undefined; count: number }[] = [];
  const wrapped: EventStore<D> = {
    append: (...args) => store.append(...args),
    appendMany: (...args) => store.appendMany(...args),
    readEvents: (...args) => store.readEvents(...args),
    async readAggregateStream(db: D, type: string, id: string, opts?: ReadStreamOptions) {
      const stream = await store.readAggregateStream(db, type, id, opts);
      reads.push({ from: opts?.fromVersion, count: stream.events.length });
      return stream;
    },
  };
  return { store: wrapped, reads };
}

for (const backend of ["PostgreSQL", "memory"] as const) {
  describe(`snapshots (${backend})`, () => {
    async function setup() {
      if (backend === "memory") {
        const memory = new InMemoryStore();
        return {
          store: memory as EventStore<unknown>,
          snapshots: memory as SnapshotStore<unknown>,
          db: undefined as unknown,
        };
      }
      const store = await database.freshStore();
      return {
        store: store as EventStore<unknown>,
        snapshots: new PostgresSnapshotStore(store) as SnapshotStore<unknown>,
        db: database.sql as unknown,
      };
    }

    it("writes one when an append crosses `every`, and starts from it", async () => {
      const { store, snapshots, db } = await setup();
      const policy = { ...options, snapshots: { store: snapshots, every: 10, version: 1 } };
      await handleCommand(store, db, account, open("ann"), policy);
      for (let i = 0; i < 24; i++) await handleCommand(store, db, account, deposit(1n), policy);
      const kept = await snapshots.readSnapshot(db, "Account", "a", 1);
      assert.equal(kept?.aggregateVersion, 20n);
      const { store: watched, reads } = recording(store);
      const loaded = await aggregateStream(watched, db, account, policy);
      assert.deepEqual(reads, [{ from: 21n, count: 5 }]);
      assert.equal(loaded.version, 25n);
      const replay = await aggregateStream(store, db, account, options);
      assert.deepEqual(loaded, replay);
      assert.equal(replay.state.balance, 24n);
    });

    it("skips a snapshot of another shape version, and one ahead of the stream", async () => {
      const { store, snapshots, db } = await setup();
      const v1 = { ...options, snapshots: { store: snapshots, every: 2, version: 1 } };
      await handleCommand(store, db, account, open("ann"), v1);
      await handleCommand(store, db, account, deposit(5n), v1);
      assert.equal((await snapshots.readSnapshot(db, "Account", "a", 1))?.aggregateVersion, 2n);
      // The state's shape changed: version 2 ignores version 1's snapshot.
      const v2 = { ...options, snapshots: { store: snapshots, every: 2, version: 2 } };
      const { store: watched, reads } = recording(store);
      const loaded = await aggregateStream(watched, db, account, v2);
      assert.deepEqual(reads, [{ from: undefined, count: 2 }]);
      assert.equal(loaded.state.balance, 5n);
      // A snapshot ahead of the stream (written by hand) is never used.
      await snapshots.writeSnapshot(db, {
        ...account,
        aggregateVersion: 99n,
        snapshotVersion: 2,
        state: new TextEncoder().encode('{"open":true,"balance":{"$bigint":"1000"},"events":99}'),
      });
      assert.equal(await snapshots.readSnapshot(db, "Account", "a", 2), undefined);
      const again = await aggregateStream(store, db, account, v2);
      assert.equal(again.state.balance, 5n);
      assert.equal(again.version, 2n);
    });

    if (backend === "PostgreSQL") {
      it("writes the snapshot in the append's transaction: a failed write stores no event", async () => {
        const { store, snapshots, db } = await setup();
        const failing: SnapshotStore<unknown> = {
          readSnapshot: (...args) => snapshots.readSnapshot(...args),
          transaction: (...args) => snapshots.transaction(...args),
          async writeSnapshot(tx, snapshot) {
            await snapshots.writeSnapshot(tx, snapshot);
            throw new Error("disk full");
          },
        };
        const policy = { ...options, snapshots: { store: failing, every: 2, version: 1 } };
        await handleCommand(store, db, account, open("ann"), policy);
        await assert.rejects(handleCommand(store, db, account, deposit(1n), policy), /disk full/);
        assert.equal((await store.readAggregateStream(db, "Account", "a")).version, 1n);
        assert.equal(await snapshots.readSnapshot(db, "Account", "a", 1), undefined);
      });
    }
  });
}
