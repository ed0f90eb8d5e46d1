import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type Cursor, type PersistedEvent, START } from "../mod.ts";
import { fnv1a32 } from "../src/es/segment.ts";
import type { PostgresStore, ReadEventsOptions } from "../src/postgres/mod.ts";
import { event, events, setupDatabase, type TestDb } from "./_db.ts";

const cursorOf = (e: PersistedEvent): Cursor => ({
  transactionId: e.transactionId,
  globalPosition: e.globalPosition,
});

describe("PostgresStore reads", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** Reads the whole log page by page, resuming after the last event of each page. */
  async function readAll(store: PostgresStore, options: ReadEventsOptions = {}) {
    const pages: PersistedEvent[][] = [];
    let after: Cursor = START;
    for (;;) {
      const page = await store.readEvents(db.sql, { ...options, after });
      if (page.length === 0) return pages;
      pages.push(page);
      after = cursorOf(page.at(-1)!);
    }
  }

  describe("the global log", () => {
    it("pages with no overlap and no gap, resuming after the last event read", async () => {
      const store = await db.freshStore();
      for (let round = 0; round < 4; round++) {
        await store.append(db.sql, events(`o-${round % 2}`, 2));
        await store.append(db.sql, [event(`i-${round}`, { aggregateType: "Invoice" })]);
      }
      const pages = await readAll(store, { limit: 5 });

      assert.deepEqual(pages.map((page) => page.length), [5, 5, 2]);
      assert.deepEqual(
        pages.flat().map((e) => e.globalPosition),
        Array.from({ length: 12 }, (_, i) => BigInt(i + 1)),
      );
      assert.deepEqual(pages.flat(), await store.readEvents(db.sql));
      assert.deepEqual(await store.readEvents(db.sql, { limit: 1 }), [pages[0][0]]);
    });

    it("filters by aggregate type and event type, in SQL, across pages", async () => {
      const store = await db.freshStore();
      for (let i = 0; i < 3; i++) {
        await store.append(db.sql, [
          event(`o-${i}`, { eventType: "OrderPlaced" }),
          event(`o-${i}`, { eventType: "OrderShipped" }),
        ]);
        await store.append(db.sql, [
          event(`i-${i}`, { aggregateType: "Invoice", eventType: "InvoiceSent" }),
        ]);
        await store.append(db.sql, [
          event(`c-${i}`, { aggregateType: "Customer", eventType: "OrderPlaced" }),
        ]);
      }
      const all = await store.readEvents(db.sql);
      const pick = (keep: (e: PersistedEvent) => boolean) => all.filter(keep);

      assert.deepEqual(
        (await readAll(store, { aggregateTypes: ["Invoice"], limit: 2 })).flat(),
        pick((e) => e.aggregateType === "Invoice"),
      );
      assert.deepEqual(
        (await readAll(store, { aggregateTypes: ["Invoice", "Customer"], limit: 2 })).flat(),
        pick((e) => e.aggregateType !== "Order"),
      );
      assert.deepEqual(
        (await readAll(store, { eventTypes: ["OrderPlaced"], limit: 2 })).flat(),
        pick((e) => e.eventType === "OrderPlaced"),
      );
      assert.deepEqual(
        await store.readEvents(db.sql, { aggregateTypes: ["Order"], eventTypes: ["OrderPlaced"] }),
        pick((e) => e.aggregateType === "Order" && e.eventType === "OrderPlaced"),
      );
      assert.equal(pick((e) => e.eventType === "OrderPlaced").length, 6);
      assert.deepEqual(await store.readEvents(db.sql, { eventTypes: ["Nothing"] }), []);
    });

    it("filters by segment: FNV-1a-32 of the aggregate id modulo the count", async () => {
      const store = await db.freshStore();
      const ids = Array.from({ length: 24 }, (_, i) => `customer-${i}@example.com`);
      for (const id of ids) await store.append(db.sql, events(id, 2));
      const all = await store.readEvents(db.sql);

      const owned = new Set<string>();
      for (const segment of [0, 1, 2, 3]) {
        const read = (await readAll(store, { segments: { count: 4, ids: [segment] }, limit: 7 }))
          .flat();
        const expected = all.filter((e) => fnv1a32(e.aggregateId) % 4 === segment);
        assert.deepEqual(read, expected);
        assert.notEqual(expected.length, 0, `segment ${segment} owns no aggregate of the sample`);
        for (const e of read) owned.add(e.eventId);
      }
      assert.equal(owned.size, all.length);
      assert.deepEqual(
        await store.readEvents(db.sql, { segments: { count: 4, ids: [3, 1] } }),
        all.filter((e) => [1, 3].includes(fnv1a32(e.aggregateId) % 4)),
      );
      // A hash above 2^31 must not turn negative in SQL.
      assert.equal(ids.some((id) => fnv1a32(id) > 2 ** 31), true);
    });
  });

  describe("an aggregate's stream", () => {
    async function storeWithStreams() {
      const store = await db.freshStore();
      // Interleaved with other aggregates so that positions and versions differ.
      for (let v = 1; v <= 4; v++) {
        await store.append(db.sql, [event("o-1", { eventType: `V${v}` })]);
        await store.append(db.sql, [event("o-2", { eventType: `V${v}` })]);
        await store.append(db.sql, [event("o-1", { aggregateType: "Invoice" })]);
      }
      return store;
    }

    it("reads the whole stream in version order, and no other aggregate's events", async () => {
      const store = await storeWithStreams();
      const stream = await store.readAggregateStream(db.sql, "Order", "o-1");

      assert.equal(stream.aggregateType, "Order");
      assert.equal(stream.aggregateId, "o-1");
      assert.equal(stream.version, 4n);
      assert.deepEqual(stream.events.map((e) => e.aggregateVersion), [1n, 2n, 3n, 4n]);
      assert.deepEqual(stream.events.map((e) => e.eventType), ["V1", "V2", "V3", "V4"]);
      assert.deepEqual(stream.events.map((e) => e.globalPosition), [1n, 4n, 7n, 10n]);
      assert.equal(stream.events.every((e) => e.aggregateType === "Order"), true);
      assert.equal(stream.events.every((e) => e.aggregateId === "o-1"), true);
      const invoice = await store.readAggregateStream(db.sql, "Invoice", "o-1");
      assert.deepEqual(invoice.events.map((e) => e.globalPosition), [3n, 6n, 9n, 12n]);
    });

    it("reads from a version, to a version, and a range, both bounds inclusive", async () => {
      const store = await storeWithStreams();
      const versions = async (fromVersion?: bigint, toVersion?: bigint) => {
        const stream = await store.readAggregateStream(db.sql, "Order", "o-2", {
          fromVersion,
          toVersion,
        });
        return [stream.events.map((e) => e.aggregateVersion), stream.version];
      };

      assert.deepEqual(await versions(2n), [[2n, 3n, 4n], 4n]);
      assert.deepEqual(await versions(undefined, 2n), [[1n, 2n], 2n]);
      assert.deepEqual(await versions(2n, 3n), [[2n, 3n], 3n]);
      assert.deepEqual(await versions(3n, 3n), [[3n], 3n]);
      assert.deepEqual(await versions(0n, 9n), [[1n, 2n, 3n, 4n], 4n]);
      assert.deepEqual(await versions(5n), [[], 0n]);
      assert.deepEqual(await versions(3n, 2n), [[], 0n]);
    });

    it("reads an aggregate without events as an empty stream at version 0n", async () => {
      const store = await storeWithStreams();
      assert.deepEqual(await store.readAggregateStream(db.sql, "Order", "o-404"), {
        aggregateType: "Order",
        aggregateId: "o-404",
        events: [],
        version: 0n,
      });
      assert.equal((await store.readAggregateStream(db.sql, "Customer", "o-1")).version, 0n);
    });
  });

  it("round-trips payload bytes exactly, as plain Uint8Arrays", async () => {
    const store = await db.freshStore();
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    const backing = Uint8Array.from([9, 9, 0x00, 0xff, 0x00, 9, 9]);
    const large = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7919) & 0xff);
    const payloads = [
      new Uint8Array([0x00]),
      new Uint8Array([0xff, 0x00, 0xff]),
      new Uint8Array(0),
      every,
      backing.subarray(2, 5), // a view: only its own bytes are stored
      new TextEncoder().encode('\\x00 "quoted" {braces},NULL'),
      large,
    ];
    await store.append(db.sql, payloads.map((payload) => event("o-1", { payload })));
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    const log = await store.readEvents(db.sql);

    for (const read of [stream.events, log]) {
      assert.deepEqual(read.map((e) => e.payload), payloads.map((p) => Uint8Array.from(p)));
      assert.equal(read.every((e) => e.payload.constructor === Uint8Array), true);
    }
    assert.deepEqual(stream.events[4].payload, new Uint8Array([0x00, 0xff, 0x00]));
  });
});
