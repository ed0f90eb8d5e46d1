/**
 * One contract, two stores: the same tests run against `PostgresStore` on
 * a real PostgreSQL and against `InMemoryStore`, so the two cannot drift.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  type Cursor,
  DuplicateEventError,
  type EventStore,
  InMemoryStore,
  OptimisticConcurrencyError,
  START,
  uuidv7,
  ValidationError,
} from "../src/es/mod.ts";
import { event, events, json, setupDatabase, type TestDb } from "./_db.ts";

/** A store to test and the `db` to pass it. */
interface Subject {
  // deno-lint-ignore no-explicit-any -- each store has its own client type
  store: EventStore<any>;
  db: unknown;
}

function contract(name: string, fresh: () => Promise<Subject>) {
  describe(`event store contract: ${name}`, () => {
    it("checks the four forms of expected version", async () => {
      const { store, db } = await fresh();
      await store.append(db, [event("a")], { expectedVersion: "no_stream" });
      await assert.rejects(store.append(db, [event("a")], { expectedVersion: "no_stream" }), {
        name: "OptimisticConcurrencyError",
        actualVersion: 1n,
        expectedVersion: "no_stream",
      });
      await store.append(db, [event("a")], { expectedVersion: "stream_exists" });
      await assert.rejects(
        store.append(db, [event("b")], { expectedVersion: "stream_exists" }),
        OptimisticConcurrencyError,
      );
      const exact = await store.append(db, events("a", 2), { expectedVersion: 2n });
      assert.equal(exact.fromVersion, 2n);
      assert.equal(exact.toVersion, 4n);
      await assert.rejects(store.append(db, [event("a")], { expectedVersion: 3n }), {
        name: "OptimisticConcurrencyError",
        actualVersion: 4n,
        expectedVersion: 3n,
      });
      await store.append(db, [event("b")], { expectedVersion: 0n });
      await assert.rejects(
        store.append(db, [event("b")], { expectedVersion: 0n }),
        OptimisticConcurrencyError,
      );
      const any = await store.append(db, [event("a")], { expectedVersion: "any" });
      assert.equal(any.toVersion, 5n);
      assert.equal((await store.readAggregateStream(db, "Order", "a")).version, 5n);
    });

    it("returns the original result to an exact retry, and refuses other reuse of an id", async () => {
      const { store, db } = await fresh();
      const batch = events("a", 2).map((e) => ({ ...e, eventId: uuidv7() }));
      const first = await store.append(db, batch, { expectedVersion: "no_stream" });
      const again = await store.append(db, batch, { expectedVersion: "no_stream" });
      assert.deepEqual(again.globalPositions, first.globalPositions);
      assert.deepEqual(again.events.map((e) => e.eventId), batch.map((e) => e.eventId));
      assert.equal(again.toVersion, 2n);
      // The same ids at another version, or on another aggregate: duplicates.
      await assert.rejects(store.append(db, batch, { expectedVersion: 2n }), DuplicateEventError);
      await assert.rejects(
        store.append(db, [{ ...event("b"), eventId: batch[0].eventId }]),
        (error: unknown) =>
          error instanceof DuplicateEventError && error.eventId === batch[0].eventId,
      );
      // A duplicate wins over a conflict.
      await assert.rejects(
        store.append(db, [{ ...event("a"), eventId: batch[1].eventId }], { expectedVersion: 9n }),
        DuplicateEventError,
      );
      assert.equal((await store.readAggregateStream(db, "Order", "a")).version, 2n);
      assert.equal((await store.readAggregateStream(db, "Order", "b")).version, 0n);
    });

    it("refuses bad input with a ValidationError and writes nothing", async () => {
      const { store, db } = await fresh();
      const bad: [string, () => Promise<unknown>][] = [
        ["events", () => store.append(db, [])],
        ["events[0].payload", () => store.append(db, [{ ...event("a"), payload: "x" as never }])],
        ["events[1].aggregateId", () => store.append(db, [event("a"), event("b")])],
        ["events[0].eventId", () => store.append(db, [{ ...event("a"), eventId: "nope" }])],
        ["expectedVersion", () => store.append(db, [event("a")], { expectedVersion: -1n })],
        ["options.expected", () => store.append(db, [event("a")], { expected: 1n } as never)],
        ["appends", () => store.appendMany(db, [])],
        ["aggregateId", () => store.readAggregateStream(db, "Order", "")],
        [
          "fromVersion",
          () => store.readAggregateStream(db, "Order", "a", { fromVersion: 1 as never }),
        ],
        ["limit", () => store.readEvents(db, { limit: 0 })],
        [
          "after.globalPosition",
          () => store.readEvents(db, { after: { transactionId: 0n, globalPosition: -1n } }),
        ],
      ];
      for (const [field, call] of bad) {
        await assert.rejects(
          call(),
          (error: unknown) => error instanceof ValidationError && error.field === field,
          field,
        );
      }
      assert.equal((await store.readEvents(db)).length, 0);
    });

    it("appends to several aggregates all or nothing, and retries them exactly", async () => {
      const { store, db } = await fresh();
      await store.append(db, [event("b")]);
      const entries = [
        { events: [{ ...event("a"), eventId: uuidv7() }], expectedVersion: "no_stream" as const },
        { events: [{ ...event("b"), eventId: uuidv7() }], expectedVersion: 5n },
      ];
      await assert.rejects(store.appendMany(db, entries), {
        name: "OptimisticConcurrencyError",
        aggregateId: "b",
        actualVersion: 1n,
      });
      assert.equal((await store.readAggregateStream(db, "Order", "a")).version, 0n);
      entries[1].expectedVersion = 1n;
      const stored = await store.appendMany(db, entries);
      assert.deepEqual(stored.map((r) => r.toVersion), [1n, 2n]);
      const again = await store.appendMany(db, entries);
      assert.deepEqual(again.map((r) => r.globalPositions), stored.map((r) => r.globalPositions));
      await assert.rejects(
        store.appendMany(db, [entries[0], { events: [event("c")] }]),
        DuplicateEventError,
      );
      assert.equal((await store.readAggregateStream(db, "Order", "c")).version, 0n);
    });

    it("reads a stream between versions", async () => {
      const { store, db } = await fresh();
      await store.append(db, events("a", 5));
      const middle = await store.readAggregateStream(db, "Order", "a", {
        fromVersion: 2n,
        toVersion: 4n,
      });
      assert.deepEqual(middle.events.map((e) => e.aggregateVersion), [2n, 3n, 4n]);
      assert.deepEqual(middle.events.map((e) => e.eventType), ["E2", "E3", "E4"]);
      assert.equal(middle.version, 4n);
      const read = middle.events[0];
      assert.equal(read.eventVersion, 1);
      assert.equal(read.metadata, null);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(read.payload)), { aggregateId: "a" });
    });

    it("reads the global log in order, after cursors, with filters", async () => {
      const { store, db } = await fresh();
      await store.append(db, events("a", 3));
      await store.appendMany(db, [
        { events: [event("b", { aggregateType: "Invoice" })] },
        { events: [event("c", { eventType: "Special", payload: json(1) })] },
      ]);
      await store.append(db, events("a", 1));
      const all = await store.readEvents(db);
      assert.equal(all.length, 6);
      const pairs = all.map((e) => [e.transactionId, e.globalPosition] as const);
      for (let i = 1; i < pairs.length; i++) {
        const [t0, p0] = pairs[i - 1];
        const [t1, p1] = pairs[i];
        assert.ok(t0 < t1 || (t0 === t1 && p0 < p1), "log order");
      }
      // One append, one transaction; several appends, several.
      assert.equal(new Set(all.slice(0, 3).map((e) => e.transactionId)).size, 1);
      assert.equal(all[3].transactionId, all[4].transactionId);
      assert.notEqual(all[2].transactionId, all[3].transactionId);
      let cursor: Cursor = START;
      const paged = [];
      for (;;) {
        const page = await store.readEvents(db, { after: cursor, limit: 4 });
        if (page.length === 0) break;
        paged.push(...page);
        cursor = page.at(-1)!;
      }
      assert.deepEqual(paged.map((e) => e.eventId), all.map((e) => e.eventId));
      const invoices = await store.readEvents(db, { aggregateTypes: ["Invoice"] });
      assert.deepEqual(invoices.map((e) => e.aggregateId), ["b"]);
      const special = await store.readEvents(db, { eventTypes: ["Special"] });
      assert.deepEqual(special.map((e) => e.aggregateId), ["c"]);
      const both = await store.readEvents(db, { segments: { count: 2, ids: [0, 1] } });
      assert.equal(both.length, 6);
    });
  });
}

contract("in memory", () => Promise.resolve({ store: new InMemoryStore(), db: undefined }));

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());
contract("PostgreSQL", async () => ({ store: await database.freshStore(), db: database.sql }));
