import { after, before, describe, it, waitUntil, within } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  type AppendResult,
  DuplicateEventError,
  type Event,
  type ExpectedVersion,
  OptimisticConcurrencyError,
  START,
  uuidv7,
  ValidationError,
} from "../mod.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { quote } from "../src/postgres/tables.ts";
import { event, gate, setupDatabase, type TestDb } from "./_db.ts";

/** What an append came to, comparable between two stores. */
type Outcome =
  | { ok: [bigint, bigint, string[]] }
  | { conflict: [string, string, bigint] }
  | { duplicate: string };

function outcomeOf(settled: PromiseSettledResult<AppendResult>): Outcome {
  if (settled.status === "fulfilled") {
    const r = settled.value;
    return { ok: [r.fromVersion, r.toVersion, r.events.map((e) => e.eventType)] };
  }
  const e = settled.reason;
  if (e instanceof OptimisticConcurrencyError) {
    return { conflict: [e.aggregateId, String(e.expectedVersion), e.actualVersion] };
  }
  if (e instanceof DuplicateEventError) return { duplicate: e.eventId };
  throw e;
}

describe("append coalescing", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /**
   * Locks the heads of `ids` in a transaction of its own, held until the
   * returned function lets go: an append to one of them waits until then.
   */
  async function hold(store: PostgresStore, ids: string[]): Promise<() => Promise<void>> {
    const locked = gate();
    const release = gate();
    const holding = db.client({ max: 1 }).begin(async (tx) => {
      await tx`select from ${tx(store.tables.aggregateHeads)}
        where aggregate_id in ${tx(ids)} for update`;
      locked.open();
      await release.promise;
    });
    await within(locked.promise, 10_000, `${ids} to be locked`);
    return async () => {
      release.open();
      await within(holding, 10_000, `the holder of ${ids} to commit`);
    };
  }

  /** How many backends of the test database wait on a lock. */
  async function lockWaits(): Promise<number> {
    const [{ n }] = await db.sql`
      select count(*)::int as n from pg_stat_activity
      where wait_event_type = 'Lock' and datname = current_database()
        and pid <> pg_backend_pid()`;
    return n;
  }

  /** The events of aggregates whose id is `like`, and the statements (transactions) that stored them. */
  async function storedLike(store: PostgresStore, like: string) {
    const [{ n, statements }] = await db.sql`
      select count(*)::int as n, count(distinct transaction_id)::int as statements
      from ${db.sql(store.tables.events)} where aggregate_id like ${like}`;
    return { n, statements };
  }

  /** A coalescing store in which the aggregates `ids` exist, at version 1. */
  async function storeWith(ids: readonly string[]): Promise<PostgresStore> {
    const store = await db.freshStore({ coalesce: true });
    for (const id of ids) await store.append(db.sql, [event(id)]);
    return store;
  }

  /** One one-event append to each of `ids` on `pool`, made in that order. */
  function appendEach(store: PostgresStore, pool: postgres.Sql, ids: readonly string[]) {
    return ids.map((id) => store.append(pool, [event(id)]));
  }

  const title =
    "256 callers over 2,000 aggregates: each gets what it gets alone, the log stays whole";
  it(title, { timeout: 120_000 }, async () => {
    const AGGREGATES = 2000;
    const CALLERS = 256;
    const HOT = 8;
    const sent: string[] = [];
    const coalesced = await db.freshStore({ coalesce: true });
    // The statements that insert events: one per statement, alone or shared.
    const pool = db.client({
      max: 8,
      debug: (_c: number, text: string) => {
        if (text.includes(`insert into ${quote(coalesced.tables.events)}`)) sent.push(text);
      },
    });
    const alone = await db.freshStore();
    const name = (k: number) => `a-${k}`;
    // Every even aggregate exists at version 2, stored by a known append.
    const seeds = new Map<number, Event[]>();
    for (let k = 0; k < AGGREGATES; k += 2) {
      seeds.set(k, [1, 2].map((i) => event(name(k), { eventType: `S${i}`, eventId: uuidv7() })));
    }
    const seeded = new Map<string, Map<number, AppendResult>>();
    for (const store of [coalesced, alone]) {
      const results = new Map<number, AppendResult>();
      for (const [k, events] of seeds) {
        results.set(k, await store.append(db.sql, events, { expectedVersion: "no_stream" }));
      }
      seeded.set(store.tables.schema!, results);
    }

    // One append per aggregate, a kind per aggregate; plus appends to a few
    // hot aggregates from every caller, which must never share a statement.
    type Op = { k: number; events: Event[]; expectedVersion: ExpectedVersion; retry?: boolean };
    const ops: Op[] = [];
    for (let k = 0; k < AGGREGATES; k++) {
      const exists = seeds.has(k);
      const fresh = (n: number, ids: boolean) =>
        Array.from(
          { length: n },
          (_, i) => event(name(k), { eventType: `E${i}`, ...(ids ? { eventId: uuidv7() } : {}) }),
        );
      switch (k % 7) {
        case 0:
          ops.push({ k, events: fresh(2, true), expectedVersion: exists ? 2n : 0n });
          break;
        case 1:
          ops.push({ k, events: fresh(1, false), expectedVersion: "any" });
          break;
        case 2:
          ops.push({ k, events: fresh(1, true), expectedVersion: "no_stream" });
          break;
        case 3:
          ops.push({ k, events: fresh(3, false), expectedVersion: 7n });
          break;
        case 4: {
          // A stored id of another aggregate.
          const [stolen] = seeds.get((k + 2) % AGGREGATES - ((k + 2) % 2))!;
          const events = [{ ...fresh(1, false)[0], eventId: stolen.eventId }];
          ops.push({ k, events, expectedVersion: "any" });
          break;
        }
        case 5:
          ops.push(
            exists
              ? { k, events: seeds.get(k)!, expectedVersion: "no_stream", retry: true }
              : { k, events: fresh(1, false), expectedVersion: "stream_exists" },
          );
          break;
        default:
          ops.push({
            k,
            events: fresh(1, true),
            expectedVersion: exists ? "stream_exists" : "any",
          });
      }
    }
    const hot = (caller: number, round: number) => ({
      k: -1,
      events: [event(`hot-${caller % HOT}`, { eventType: `H${caller}.${round}` })],
      expectedVersion: "any" as const,
    });

    const run = async (store: PostgresStore, sql: postgres.Sql, concurrent: boolean) => {
      const outcomes = new Map<Op, PromiseSettledResult<AppendResult>>();
      const one = async (op: Op) => {
        const settled = await store.append(sql, op.events, { expectedVersion: op.expectedVersion })
          .then(
            (value) => ({ status: "fulfilled", value }) as const,
            (reason) => ({ status: "rejected", reason }) as const,
          );
        outcomes.set(op, settled);
      };
      const caller = async (c: number) => {
        for (let round = 0, k = c; k < AGGREGATES; round++, k += CALLERS) {
          await one(ops[k]);
          await one(hot(c, round));
        }
      };
      if (concurrent) {
        await Promise.all(Array.from({ length: CALLERS }, (_, c) => caller(c)));
      } else {
        for (let c = 0; c < CALLERS; c++) await caller(c);
      }
      return outcomes;
    };
    const together = await within(run(coalesced, pool, true), 50_000, "the coalesced appends");
    const statements = sent.length;
    const single = await within(run(alone, db.sql, false), 50_000, "the same appends, one by one");

    const kinds = new Set<string>();
    for (const op of ops) {
      const got = together.get(op)!;
      const want = single.get(op)!;
      assert.deepEqual(outcomeOf(got), outcomeOf(want), `aggregate ${op.k}`);
      kinds.add(Object.keys(outcomeOf(got))[0]);
      if (op.retry) {
        assert.equal(got.status, "fulfilled");
        assert.deepEqual(
          (got as PromiseFulfilledResult<AppendResult>).value,
          seeded.get(coalesced.tables.schema!)!.get(op.k),
          "an exact retry returns the stored result",
        );
      }
    }
    assert.deepEqual([...kinds].sort(), ["conflict", "duplicate", "ok"]);
    const hotOutcomes = [...together.entries()].filter(([op]) => op.k === -1);
    assert.ok(hotOutcomes.every(([, s]) => s.status === "fulfilled"), "every hot append stored");
    assert.ok(
      statements < together.size,
      `coalescing shared statements: ${statements} statements for ${together.size} appends`,
    );

    // Versions contiguous, the log gap-free and in commit-safe order.
    const { events: eventsTable } = coalesced.tables;
    const [{ n }] = await db.sql`select count(*)::int as n from ${db.sql(eventsTable)}`;
    const log = [];
    for (let after = START;;) {
      const page = await coalesced.readEvents(db.sql, { after, limit: 1000 });
      if (page.length === 0) break;
      log.push(...page);
      const last = page.at(-1)!;
      after = { transactionId: last.transactionId, globalPosition: last.globalPosition };
    }
    assert.equal(log.length, n, "the log reads every stored event");
    const versions = new Map<string, bigint>();
    for (const [i, e] of log.entries()) {
      if (i > 0) {
        const before = log[i - 1];
        assert.ok(
          before.transactionId < e.transactionId ||
            (before.transactionId === e.transactionId && before.globalPosition < e.globalPosition),
          "the log in (transaction id, position) order",
        );
      }
      const previous = versions.get(e.aggregateId) ?? 0n;
      assert.equal(e.aggregateVersion, previous + 1n, `${e.aggregateId} contiguous in log order`);
      versions.set(e.aggregateId, e.aggregateVersion);
    }
    const heads = await db.sql`
      select aggregate_id, aggregate_version::text as v from ${
      db.sql(coalesced.tables.aggregateHeads)
    }`;
    assert.equal(heads.length, versions.size);
    for (const head of heads) assert.equal(BigInt(head.v), versions.get(head.aggregate_id));
  });

  it("appends queue while every connection carries one; the queue goes whole", async () => {
    const pool = db.client({ max: 4 });
    const held = ["h-1", "h-2", "h-3", "h-4", "h-5"];
    const store = await storeWith(held);
    const locked = gate();
    const release = gate();
    const holding = db.client({ max: 1 }).begin(async (tx) => {
      await tx`select from ${tx(store.tables.aggregateHeads)}
        where aggregate_id in ${tx(held)} for update`;
      locked.open();
      await release.promise;
    });
    await within(locked.promise, 10_000, "the heads to be locked");
    // Four lone appends take the four connections and wait on the locked
    // heads; the fifth and 40 appends to new aggregates queue.
    const first = appendEach(store, pool, held);
    const queued = Array.from({ length: 40 }, (_, i) => store.append(pool, [event(`n-${i}`)]));
    await waitUntil("four appends to wait on the heads", async () => await lockWaits() === 4);
    release.open();
    await within(holding, 10_000, "the holder to commit");
    await within(Promise.all([...first, ...queued]), 20_000, "every append");
    // Counted from the database: each statement is a transaction, and files
    // its events under that transaction's id.
    const [{ statements, queue }] = await db.sql`
      select count(distinct transaction_id)::int as statements,
        count(distinct transaction_id) filter (where aggregate_id like 'n-%')::int as queue
      from ${db.sql(store.tables.events)} where aggregate_id like 'n-%' or aggregate_version = 2`;
    assert.equal(queue, 1, "the 40 queued appends in one statement");
    assert.equal(statements, 5, "45 appends: four alone, then the queue whole");
  });

  it("beside a statement in flight, with more appends pending than connections, the queue goes whole, even while that statement waits", async () => {
    const pool = db.client({ max: 8 });
    const held = Array.from({ length: 9 }, (_, i) => `h-${i}`);
    const store = await storeWith(held);
    const made: Promise<unknown>[] = [];
    const releaseFirst = await hold(store, held.slice(0, 8));
    try {
      const releaseLast = await hold(store, held.slice(8));
      try {
        // Eight lone appends take the eight connections and wait; h-8 and
        // 11 new aggregates queue. Once the first holder lets go, those
        // twelve go as one statement, which waits on h-8.
        const lone = appendEach(store, pool, held.slice(0, 8));
        const shared = appendEach(store, pool, [
          held[8],
          ...Array.from({ length: 11 }, (_, i) => `n-${i}`),
        ]);
        made.push(...lone, ...shared);
        await waitUntil("eight appends to wait on the heads", async () => await lockWaits() === 8);
        await releaseFirst();
        await within(Promise.all(lone), 10_000, "the lone appends");
        // Twelve appends pending in that statement, seven connections free:
        // eleven more go together beside it (none alone first, taking a
        // connection for one append), and they do not wait for it.
        const later = Array.from({ length: 11 }, (_, i) => store.append(pool, [event(`e-${i}`)]));
        made.push(...later);
        await within(Promise.all(later), 10_000, "the eleven, while h-8 is held");
        assert.deepEqual(
          await storedLike(store, "e-%"),
          { n: 11, statements: 1 },
          "the eleven in one statement",
        );
        assert.equal((await storedLike(store, "n-%")).n, 0, "the statement with h-8 still waits");
      } finally {
        await releaseLast();
      }
      await within(Promise.all(made), 10_000, "the statement that waited on h-8");
    } finally {
      await releaseFirst();
      // A failure above leaves no append running into the next test.
      await within(Promise.allSettled(made), 10_000, "every append to settle");
    }
  });

  it("appends queued behind statements that wait on locks go on a free connection", async () => {
    const pool = db.client({ max: 8 });
    const heads = Array.from({ length: 10 }, (_, i) => `h-${i}`);
    const store = await storeWith(heads);
    const made: Promise<unknown>[] = [];
    const releaseFirst = await hold(store, heads.slice(0, 8));
    try {
      const releaseLast = await hold(store, heads.slice(8));
      try {
        // Eight lone appends fill the pool and wait on h-0..h-7; h-8 and ten
        // new aggregates queue. When the first holder lets go, those eleven
        // go as one statement, which waits on h-8; h-9 and five more then
        // go as a second one, which waits on h-9. Seventeen appends pending
        // in the two statements of the quarter (two of eight connections).
        const lone = appendEach(store, pool, heads.slice(0, 8));
        made.push(...lone);
        made.push(
          ...appendEach(store, pool, ["h-8", ...Array.from({ length: 10 }, (_, i) => `n-${i}`)]),
        );
        await waitUntil("eight appends to wait on the heads", async () => await lockWaits() === 8);
        await releaseFirst();
        await within(Promise.all(lone), 10_000, "the lone appends");
        made.push(
          ...appendEach(store, pool, ["h-9", ...Array.from({ length: 5 }, (_, i) => `m-${i}`)]),
        );
        await waitUntil(
          "two statements to wait on h-8 and h-9",
          async () => await lockWaits() === 2,
        );
        // The quarter is busy, six connections are free, and the holder of
        // h-8 and h-9 could be waiting for one of these appends.
        const later = Array.from({ length: 4 }, (_, i) => store.append(pool, [event(`e-${i}`)]));
        made.push(...later);
        await within(
          Promise.all(later),
          10_000,
          "the four later appends, while h-8 and h-9 are held",
        );
        assert.deepEqual(
          await storedLike(store, "e-%"),
          { n: 4, statements: 1 },
          "the four in one statement",
        );
      } finally {
        await releaseLast();
      }
    } finally {
      await releaseFirst();
      await within(Promise.allSettled(made), 10_000, "every append to settle");
    }
  });

  it("a shared statement waiting on a caller's transaction gives way; its appends go alone", async () => {
    // Four connections: postgres.js sends a query on a busy connection,
    // behind what waits there, when none is idle (a NOTIFY after each
    // append takes one for a moment).
    const pool = db.client({ max: 4 });
    const held = ["h-1", "h-2", "h-3", "h-4"];
    const store = await storeWith(held);
    const made: Promise<unknown>[] = [];
    const releaseHeld = await hold(store, held);
    const transaction = gate();
    const proceed = gate();
    try {
      // The caller's transaction appends to b, then (on the pool) to a.
      const caller = db.client({ max: 1 }).begin(async (tx) => {
        await store.append(tx, [event("b")]);
        transaction.open();
        await proceed.promise;
        await store.append(pool, [event("a")]);
      });
      made.push(caller);
      await within(transaction.promise, 10_000, "the caller's append to b");
      // Four lone appends take the connections and wait on the held heads;
      // appends to a and b queue, and go as one statement once those end:
      // it locks a's head, then waits on b's, which the caller holds.
      made.push(...appendEach(store, pool, [...held, "a", "b"]));
      await waitUntil("four appends to wait on the heads", async () => await lockWaits() === 4);
      await releaseHeld();
      await waitUntil("the shared statement to wait on b", async () => await lockWaits() === 1);
      // The caller's append to a queues behind that statement: without a
      // bound on its lock wait, each would wait for the other for ever.
      proceed.open();
      await within(Promise.all(made), 10_000, "every append, the caller's transaction included");
    } finally {
      proceed.open();
      await releaseHeld();
      await within(Promise.allSettled(made), 20_000, "every append to settle");
    }
    const heads = await db.sql`select aggregate_id, aggregate_version::int as v
      from ${db.sql(store.tables.aggregateHeads)} where aggregate_id in ('a', 'b')
      order by aggregate_id`;
    assert.deepEqual(heads.map((h) => [h.aggregate_id, h.v]), [["a", 2], ["b", 2]]);
  });

  it("the appends of a shared statement that gave way go alone, none behind one that waits", async () => {
    // Two connections, no NOTIFY to share them: postgres.js sends a query
    // that finds no idle connection behind whatever a busy one is running,
    // unless that one runs a statement it had to prepare first.
    const store = await db.freshStore({ coalesce: true, notifyChannel: false });
    // The statements that insert events: one per statement, alone or shared.
    const sent: string[] = [];
    const pool = db.client({
      max: 2,
      debug: (_c: number, text: string) => {
        if (text.includes(`insert into ${quote(store.tables.events)}`)) sent.push(text);
      },
    });
    for (const id of ["h-1", "h-2", "z-3"]) await store.append(db.sql, [event(id)]);
    // Each connection prepares the one-event append, so that one running
    // it takes the next query behind it.
    await Promise.all(appendEach(store, pool, ["w-1", "w-2"]));
    const fresh = Array.from({ length: 6 }, (_, i) => `n-${i}`);
    const made: Promise<unknown>[] = [];
    const releaseFirst = await hold(store, ["h-1"]);
    try {
      const releaseSecond = await hold(store, ["h-2", "z-3"]);
      try {
        // Two lone appends take both connections and wait on the heads;
        // the rest queue. z-3 goes last: its append, run alone again, waits
        // on the second holder, and the appends after it would wait too.
        made.push(...appendEach(store, pool, ["h-1", "h-2"]));
        await waitUntil(
          "the two lone appends to wait on the heads",
          async () => await lockWaits() === 2,
        );
        const queued = appendEach(store, pool, [...fresh, "z-3"]);
        made.push(...queued);
        for (const append of made) append.catch(() => {});
        // h-1's append ends and the queue goes as one statement, which
        // waits on z-3, gives way, and leaves each append to run alone, in
        // order. One connection stays taken by h-2's append: sent all at
        // once, every other one would queue behind it until the second
        // holder let go.
        await releaseFirst();
        await within(
          Promise.all(queued.slice(0, fresh.length)),
          10_000,
          "the appends to new aggregates, while h-2 and z-3 stay held",
        );
        assert.deepEqual(await storedLike(store, "n-%"), { n: 6, statements: 6 }, "each alone");
      } finally {
        await releaseSecond();
      }
    } finally {
      await releaseFirst();
      await within(Promise.allSettled(made), 20_000, "every append to settle");
    }
    await within(Promise.all(made), 1_000, "every append to succeed");
    // Two to prepare, two alone, the shared one, and its seven appends again.
    assert.equal(sent.length, 12, "the queue went as one statement first");
    const heads = await db.sql`select aggregate_id, aggregate_version::int as v
      from ${db.sql(store.tables.aggregateHeads)} order by aggregate_id`;
    assert.deepEqual(
      heads.map((h) => [h.aggregate_id, h.v]),
      [["h-1", 2], ["h-2", 2], ...fresh.map((id) => [id, 1]), ["w-1", 1], ["w-2", 1], ["z-3", 2]],
    );
  });

  it("a backend killed during a coalesced statement loses and duplicates nothing", async () => {
    const pool = db.client({ max: 2 });
    const store = await storeWith(["h-1", "h-2", "h-3"]);
    // Two holders of head rows: the two first appends take both connections
    // and wait; the next ones queue. When the first holder lets go, the
    // queue goes as one statement, which waits on the second holder's h-3.
    const releaseFirst = await hold(store, ["h-1"]);
    const releaseSecond = await hold(store, ["h-2", "h-3"]);
    // Backends waiting on a lock, with statements started after `since`.
    // (Not told apart by their text: pg_stat_activity keeps only its first
    // kilobyte; nor by backend: the shared statement runs on a connection
    // that a lone append used before.)
    const waiting = async (since = "-infinity") => {
      const rows = await db.sql`
        select pid from pg_stat_activity
        where wait_event_type = 'Lock' and pid <> pg_backend_pid()
          and query_start > ${since}::text::timestamptz`;
      return rows.map((r) => r.pid as number);
    };
    const appends = [
      { events: [event("h-1")], expectedVersion: "any" as const },
      { events: [event("h-2")], expectedVersion: "any" as const },
      ...Array.from({ length: 20 }, (_, i) => ({
        events: [event(`n-${i}`), event(`n-${i}`)],
        expectedVersion: "no_stream" as const,
      })),
      { events: [event("h-3"), event("h-3")], expectedVersion: 1n },
    ];
    const settled = Promise.allSettled(
      appends.map((a) => store.append(pool, a.events, { expectedVersion: a.expectedVersion })),
    );
    await waitUntil(
      "the two lone appends to wait on the heads",
      async () => (await waiting()).length === 2,
    );
    // Read before the release: the queue may go out before a read after it.
    const [{ released }] = await db.sql`select clock_timestamp()::text as released`;
    await releaseFirst();
    let shared: number[] = [];
    await waitUntil("the coalesced statement to wait on h-3", async () => {
      shared = await waiting(released);
      return shared.length === 1;
    });
    await db.sql`select pg_terminate_backend(${shared[0]})`;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await releaseSecond();
    const outcomes = await within(settled, 20_000, "every append to settle");

    const stored = await db.sql`select event_id::text as id from ${db.sql(store.tables.events)}`;
    const ids = new Set(stored.map((r) => r.id as string));
    let expected = 3;
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === "fulfilled") {
        expected += outcome.value.events.length;
        for (const e of outcome.value.events) assert.ok(ids.has(e.eventId), `append ${i} stored`);
      } else {
        // A retriable error, then: the connection's.
        assert.match(
          String(outcome.reason?.code),
          /^(CONNECTION_|08|57P0)/,
          String(outcome.reason),
        );
      }
    }
    assert.equal(stored.length, expected, "no event lost or written twice");
    assert.ok(
      outcomes.filter((o) => o.status === "fulfilled").length >= appends.length - 2,
      `the killed statement's appends were retried: ${outcomes.map((o) => o.status)}`,
    );
  });

  it("an append aborted while it waits is dropped; one aborted once sent gets its outcome", async () => {
    const pool = db.client({ max: 1 });
    const store = await db.freshStore();
    await store.append(db.sql, [event("h-1")]);
    const aborted = (reason: unknown) => (e: unknown) => e === reason;
    // Aborted before the call: refused at once, coalesced or not.
    const early = new AbortController();
    early.abort(new Error("too late"));
    for (const each of [store, await db.freshStore({ coalesce: false })]) {
      await assert.rejects(
        each.append(pool, [event("x-0")], { signal: early.signal }),
        aborted(early.signal.reason),
      );
    }
    // Aborted once sent (an idle store sends at once): stored all the same.
    const late = new AbortController();
    const sent = store.append(pool, [event("x-1")], { signal: late.signal });
    late.abort();
    assert.equal((await within(sent, 10_000, "the sent append")).toVersion, 1n);
    // Aborted while it waits behind an append that holds the one connection.
    const locked = gate();
    const release = gate();
    const holding = db.client({ max: 1 }).begin(async (tx) => {
      await tx`select from ${
        tx(store.tables.aggregateHeads)
      } where aggregate_id = 'h-1' for update`;
      locked.open();
      await release.promise;
    });
    await within(locked.promise, 10_000, "h-1 to be locked");
    const blocked = store.append(pool, [event("h-1")]);
    const queued = new AbortController();
    const dropped = store.append(pool, [event("x-2")], { signal: queued.signal });
    const kept = store.append(pool, [event("x-3")]);
    queued.abort(new Error("gave up"));
    await assert.rejects(
      within(dropped, 10_000, "the dropped append"),
      aborted(queued.signal.reason),
    );
    release.open();
    await within(holding, 10_000, "the holder to commit");
    assert.equal((await within(blocked, 10_000, "the blocked append")).toVersion, 2n);
    assert.equal((await within(kept, 10_000, "the kept append")).toVersion, 1n);
    const ids = await db.sql`
      select distinct aggregate_id as id from ${db.sql(store.tables.events)} order by 1`;
    assert.deepEqual(ids.map((r) => r.id), ["h-1", "x-1", "x-3"]);
  });

  it("an aggregate's appends made together commit one at a time, in the order they were made", async () => {
    const pool = db.client({ max: 8 });
    const store = await db.freshStore({ coalesce: true });
    // With connections to spare, each append could go at once; exact
    // versions make any overtaking a conflict.
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        store.append(pool, [event("ordered-1")], {
          expectedVersion: i === 0 ? "no_stream" : BigInt(i),
        })),
    );
    assert.deepEqual(
      results.map((r) => r.toVersion),
      Array.from({ length: 12 }, (_, i) => BigInt(i + 1)),
    );
  });

  it("refuses a bad coalesce option before any SQL", () => {
    for (const coalesce of [{ maxEvents: 0 }, { maxEvent: 5 }, "yes"]) {
      assert.throws(
        () => new PostgresStore({ coalesce: coalesce as never }),
        (e: unknown) => e instanceof ValidationError && e.field.startsWith("coalesce"),
      );
    }
  });
});
