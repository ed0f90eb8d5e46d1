import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import postgres from "postgres";
import { isUuid, type JsonValue, type PersistedEvent } from "../mod.ts";
import { event, events, setupDatabase, type TestDb } from "./_db.ts";
import { within } from "./_projection.ts";

describe("PostgresStore.append", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("returns the global positions and versions 1..n of a new aggregate", async () => {
    const store = await db.freshStore();
    const result = await store.append(db.sql, events("o-1", 3), { expectedVersion: "no_stream" });

    assert.deepEqual(result.globalPositions, [1n, 2n, 3n]);
    assert.deepEqual(result.events.map((e) => e.globalPosition), [1n, 2n, 3n]);
    assert.deepEqual(result.events.map((e) => e.aggregateVersion), [1n, 2n, 3n]);
    assert.deepEqual(result.events.map((e) => e.eventType), ["E1", "E2", "E3"]);
    assert.equal(result.fromVersion, 0n);
    assert.equal(result.toVersion, 3n);
    const [{ xid }] = await db.sql`
      select distinct transaction_id::text as xid from ${db.sql(store.tables.events)}`;
    assert.deepEqual(result.events.map((e) => e.transactionId), [xid, xid, xid].map(BigInt));
    assert.equal(result.events.every((e) => isUuid(e.eventId)), true);
    assert.equal(new Set(result.events.map((e) => e.eventId)).size, 3);
  });

  it("tracks each aggregate's version across appends in aggregate_heads", async () => {
    const store = await db.freshStore();
    const first = await store.append(db.sql, events("o-1", 2));
    const second = await store.append(db.sql, events("o-1", 1));
    const other = await store.append(db.sql, [event("o-2", { aggregateType: "Invoice" })]);

    assert.deepEqual([first.fromVersion, first.toVersion], [0n, 2n]);
    assert.deepEqual([second.fromVersion, second.toVersion], [2n, 3n]);
    assert.deepEqual(second.globalPositions, [3n]);
    assert.deepEqual([other.fromVersion, other.toVersion], [0n, 1n]);
    const heads = await db.sql`
      select aggregate_type, aggregate_id, aggregate_version::text as version
      from ${db.sql(store.tables.aggregateHeads)} order by aggregate_type, aggregate_id`;
    assert.deepEqual(heads.map((h) => [h.aggregate_type, h.aggregate_id, h.version]), [
      ["Invoice", "o-2", "1"],
      ["Order", "o-1", "3"],
    ]);
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    assert.deepEqual(stream.events.map((e) => e.aggregateVersion), [1n, 2n, 3n]);
  });

  it("fills the defaults: event version 1, no metadata or ids, the database's time", async () => {
    const store = await db.freshStore();
    const { result, now } = await db.sql.begin(async (tx) => {
      const [{ now }] = await tx`select now() as now`;
      return { result: await store.append(tx, [event("o-1")]), now: now as Date };
    });
    const [appended] = result.events;
    const [stored] = (await store.readAggregateStream(db.sql, "Order", "o-1")).events;

    for (const e of [appended, stored]) {
      assert.equal(e.eventVersion, 1);
      assert.equal(e.metadata, null);
      assert.equal(e.traceId, null);
      assert.equal(e.correlationId, null);
      assert.equal(e.causationId, null);
      // now() is the transaction's start time: the append took its time from the database.
      assert.equal(e.createdAt.getTime(), now.getTime());
    }
    assert.deepEqual(appended, stored);
  });

  it("round-trips metadata, trace, correlation and causation ids exactly", async () => {
    const store = await db.freshStore();
    const awkward = 'quote " backslash \\ braces {} comma , NULL ünïcødé 🎉';
    const metadatas: JsonValue[] = [
      { user_id: 7, nested: { list: [1, 2.5, true, null, "x"], text: awkward } },
      "NULL",
      42,
      [awkward, { a: null }],
      false,
      // Beside events with metadata: stored as no metadata, read back as null.
      null,
    ];
    const input = metadatas.map((metadata, i) =>
      event("o-1", {
        eventType: `E${i}`,
        eventVersion: i + 2,
        metadata,
        traceId: i === 0 ? awkward : `trace-${i}`,
        correlationId: i === 1 ? "NULL" : `correlation-${i}`,
        causationId: i === 2 ? "" : null,
      })
    );
    const result = await store.append(db.sql, input);
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");
    const log = await store.readEvents(db.sql);

    const fields = (e: PersistedEvent) => ({
      eventType: e.eventType,
      eventVersion: e.eventVersion,
      metadata: e.metadata,
      traceId: e.traceId,
      correlationId: e.correlationId,
      causationId: e.causationId,
    });
    const expected = input.map((e) => ({
      eventType: e.eventType,
      eventVersion: e.eventVersion,
      metadata: e.metadata,
      traceId: e.traceId,
      correlationId: e.correlationId,
      causationId: e.causationId ?? null,
    }));
    assert.deepEqual(result.events.map(fields), expected);
    assert.deepEqual(stream.events.map(fields), expected);
    assert.deepEqual(log.map(fields), expected);
    // No metadata is SQL's NULL, not a JSON null (both read back as null).
    const unset = await db.sql`
      select aggregate_version::int as version from ${db.sql(store.tables.events)}
      where metadata is null`;
    assert.deepEqual(unset.map((row) => row.version), [metadatas.length]);
  });

  it("keeps a createdAt the caller gives", async () => {
    const store = await db.freshStore();
    const createdAt = new Date("2020-02-29T23:59:58.123Z");
    const result = await store.append(db.sql, [event("o-1", { createdAt }), event("o-1")]);
    const stream = await store.readAggregateStream(db.sql, "Order", "o-1");

    assert.equal(result.events[0].createdAt.toISOString(), "2020-02-29T23:59:58.123Z");
    assert.equal(stream.events[0].createdAt.toISOString(), "2020-02-29T23:59:58.123Z");
    assert.notEqual(stream.events[1].createdAt.getTime(), createdAt.getTime());
  });

  it("joins the caller's transaction: committed together with the caller's writes", async () => {
    const store = await db.freshStore();
    await db.sql.begin(async (tx) => {
      await store.append(tx, events("o-1", 2));
      await store.append(tx, [event("o-2")]);
      // Inside the transaction its own appends are visible; outside, nothing yet.
      assert.equal((await store.readAggregateStream(tx, "Order", "o-1")).version, 2n);
      assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 0n);
    });

    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 2n);
    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-2")).version, 1n);
    const log = await store.readEvents(db.sql);
    assert.deepEqual(log.map((e) => e.transactionId), Array(3).fill(log[0].transactionId));
  });

  it("leaves no event and no head behind when the caller's transaction rolls back", async () => {
    const store = await db.freshStore();
    await store.append(db.sql, [event("o-1")]);
    const failure = new Error("the caller changed its mind");
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await store.append(tx, events("o-1", 2));
        await store.append(tx, [event("o-2")]);
        throw failure;
      }),
      (error) => error === failure,
    );

    const counts = await db.counts(store);
    assert.deepEqual([counts.events, counts.heads], [1, 1]);
    assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 1n);
    const next = await store.append(db.sql, [event("o-1")], { expectedVersion: 1n });
    assert.deepEqual([next.fromVersion, next.toVersion], [1n, 2n]);
  });

  for (
    const [name, options] of [
      ["a default postgres() client", {}],
      ["a client with types: { bigint: postgres.BigInt }", { types: { bigint: postgres.BigInt } }],
      ["a client with fetch_types: false", { fetch_types: false }],
      ["a client with prepare: false", { prepare: false }],
    ] as const
  ) {
    it(`hands out bigints from ${name}, from its very first query`, async () => {
      const store = await db.freshStore();
      // A new client: the append and the filtered read are its first statements.
      const sql = db.client(options as postgres.Options<Record<string, never>>);
      const id = "0190a6e0-0000-7000-8000-0000000000a1";
      const appended = await store.append(sql, [event("o-1", { eventId: id }), event("o-1")]);
      const retried = await db.client(options as postgres.Options<Record<string, never>>)
        .begin((tx) => store.append(tx, [event("o-1", { eventId: id }), event("o-1")]))
        .catch((error) => error);
      const log = await db.client(options as postgres.Options<Record<string, never>>)
        .begin((tx) =>
          store.readEvents(tx, { eventTypes: ["OrderNoted"], segments: { count: 1, ids: [0] } })
        );
      const stream = await store.readAggregateStream(sql, "Order", "o-1");

      for (const e of [...appended.events, ...log, ...stream.events]) {
        assert.equal(typeof e.globalPosition, "bigint");
        assert.equal(typeof e.transactionId, "bigint");
        assert.equal(typeof e.aggregateVersion, "bigint");
      }
      assert.deepEqual(appended.globalPositions, [1n, 2n]);
      assert.deepEqual(log.map((e) => e.globalPosition), [1n, 2n]);
      assert.deepEqual(stream.events.map((e) => e.aggregateVersion), [1n, 2n]);
      assert.equal(stream.version, 2n);
      // The second append reuses a stored id next to a new one: not a retry.
      assert.equal((retried as Error).name, "DuplicateEventError");
    });
  }

  it("works with a client that transforms names and JSON keys (postgres.camel)", async () => {
    const store = await db.freshStore({ eventsTable: "OrderEvents", aggregateHeadsTable: "Heads" });
    const camel = db.client({ transform: postgres.camel });
    const metadata = { user_id: 1, nested_list: [{ snake_key: "kept" }] };
    const result = await store.append(camel, [event("o-1", { metadata })]);
    const stream = await store.readAggregateStream(camel, "Order", "o-1");
    const log = await store.readEvents(camel);
    const conflict = await store.append(camel, [event("o-1")], { expectedVersion: "no_stream" })
      .catch((error) => error);

    assert.deepEqual(result.globalPositions, [1n]);
    assert.deepEqual(stream.events.map((e) => e.metadata), [metadata]);
    assert.deepEqual(log.map((e) => e.metadata), [metadata]);
    assert.equal(conflict.name, "OptimisticConcurrencyError");
    assert.equal(conflict.actualVersion, 1n);
    const [{ count }] = await db.sql`select count(*)::int as count from ${
      db.sql(store.tables.events)
    }`;
    assert.equal(count, 1);
  });

  it("NOTIFYs every aggregate type after commit, a wake-up that waits for the gap included", async () => {
    const store = await db.freshStore({ notifyChannel: "append_wake" });
    const heard = new Set<string>();
    const listener = db.client({ max: 1 });
    let wake = () => {};
    await listener.listen("append_wake", (type) => {
      heard.add(type);
      wake();
    });
    // One connection, two appends queued on it: the first commit's wake-up
    // leaves at once, queued behind the second append; the second's comes
    // while it is on its way, then waits for the gap and leaves on its own.
    const writer = db.client({ max: 1 });
    await Promise.all(
      ["Order", "Invoice"].map((aggregateType) =>
        store.append(writer, [event("o-1", { aggregateType })])
      ),
    );
    const all = new Promise<void>((resolve) => {
      wake = () => heard.size === 2 && resolve();
      wake();
    });
    await within(all, 5_000, "a NOTIFY for both aggregate types");
    assert.deepEqual([...heard].sort(), ["Invoice", "Order"]);
  });

  it("NOTIFYs for every append made on a reserved connection, which commits each on its own", async () => {
    const store = await db.freshStore({ notifyChannel: "reserved_wake" });
    const heard: string[] = [];
    let wake = () => {};
    await db.client({ max: 1 }).listen("reserved_wake", (type) => {
      heard.push(type);
      wake();
    });
    const reserved = await db.client({ max: 1 }).reserve();
    try {
      for (const aggregateId of ["o-1", "o-2", "o-3"]) {
        const woken = new Promise<void>((resolve) => wake = resolve);
        await store.append(reserved, [event(aggregateId)]);
        await within(woken, 5_000, `a NOTIFY for the append to ${aggregateId}`);
      }
      const woken = new Promise<void>((resolve) => wake = resolve);
      await store.appendMany(reserved, [{ events: [event("o-4")] }]);
      await within(woken, 5_000, "a NOTIFY for appendMany");
      assert.deepEqual(heard, ["Order", "Order", "Order", "Order"]);
    } finally {
      reserved.release();
    }
  });
});
