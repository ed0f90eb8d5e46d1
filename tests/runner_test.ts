import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type PersistedEvent, ProjectionError, segmentOf, ValidationError } from "../mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import type { Projection } from "../src/projection/mod.ts";
import {
  partitionConfigFromArgs,
  runMultipleProjections,
  runProjectionPartitions,
} from "../src/runner/mod.ts";
import { waitUntil, within } from "./_bounds.ts";
import { json, setupDatabase, type TestDb } from "./_db.ts";
import { caughtUp, deferred } from "./_projection.ts";

/** Lets every pending callback and a few I/O turns run. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; fails after 10 s, naming `what`. */
function waitFor(what: string, condition: () => Promise<boolean>): Promise<void> {
  return waitUntil(what, condition, 10_000);
}

const SEGMENTS = 16;

/**
 * Aggregate ids that cover every one of the 16 segments, `perSegment` of
 * each, so every segment has events.
 */
function idsCoveringSegments(perSegment: number): string[] {
  const bySegment = new Map<number, string[]>();
  for (
    let i = 0;
    bySegment.size < SEGMENTS || [...bySegment.values()].some((l) => l.length < perSegment);
    i++
  ) {
    const id = `agg-${i}`;
    const list = bySegment.get(segmentOf(id, SEGMENTS)) ?? [];
    if (list.length < perSegment) list.push(id);
    bySegment.set(segmentOf(id, SEGMENTS), list);
  }
  return [...bySegment.values()].flat();
}

/** Appends `eventsPerAggregate` events to each aggregate; returns every stored event. */
async function seed(
  db: TestDb,
  store: PostgresStore,
  aggregateIds: string[],
  eventsPerAggregate: number,
): Promise<PersistedEvent[]> {
  const stored: PersistedEvent[] = [];
  for (let round = 0; round < eventsPerAggregate; round++) {
    for (const aggregateId of aggregateIds) {
      const result = await store.append(db.sql, [{
        aggregateType: "Account",
        aggregateId,
        eventType: "Deposited",
        payload: json({ round }),
      }]);
      stored.push(...result.events);
    }
  }
  return stored;
}

/** Creates `<schema>.seen`, where projections record each event once. */
async function createSeenTable(db: TestDb, store: PostgresStore): Promise<string> {
  const table = `${store.tables.schema}.seen`;
  await db.sql`create table ${db.sql(table)} (
    projection text not null, event_id uuid not null, primary key (projection, event_id))`;
  return table;
}

/** A projection that records every event in memory and in the `seen` table. */
function recorder(
  name: string,
  table: string,
  seen: string[] = [],
): Projection & { seen: string[] } {
  return {
    name,
    seen,
    async handle(event, tx) {
      seen.push(event.eventId);
      // The primary key fails the batch if an event is ever delivered twice.
      await tx`insert into ${tx(table)} (projection, event_id) values (${name}, ${event.eventId})`;
    },
  };
}

async function committedIds(db: TestDb, table: string, projection: string): Promise<string[]> {
  const rows = await db.sql`select event_id from ${db.sql(table)} where projection = ${projection}`;
  return rows.map((row) => row.event_id as string).sort();
}

const sorted = (ids: string[]) => [...ids].sort();

describe("runner", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  describe("runProjectionPartitions", () => {
    it("processes every event exactly once across 4 partitions and checkpoints every segment", async () => {
      const store = await db.freshStore();
      const table = await createSeenTable(db, store);
      const events = await seed(db, store, idsCoveringSegments(2), 3);
      assert.equal(events.length, SEGMENTS * 2 * 3);
      const projection = recorder("balances", table);

      await caughtUp(runProjectionPartitions(db.sql, store, projection, 4, {
        mode: "until_caught_up",
        config: { batchSize: 7 },
      }));

      const all = sorted(events.map((e) => e.eventId));
      assert.deepEqual(sorted(projection.seen), all);
      assert.deepEqual(await committedIds(db, table, "balances"), all);

      // A checkpoint row for every segment. Each worker's last batch was
      // short, so it moved all its segments to the log's tip: the last event
      // appended (appends ran one after the other, so it is last in log order).
      const last = events.at(-1)!;
      const rows = await db.sql`
        select segment, segment_count, transaction_id::text as tx, global_position::text as pos
        from ${db.sql(store.tables.checkpoints)} where projection_name = 'balances'
        order by segment`;
      assert.deepEqual(
        rows.map((r) => ({ ...r })),
        [...Array(SEGMENTS).keys()].map((segment) => ({
          segment,
          segment_count: SEGMENTS,
          tx: String(last.transactionId),
          pos: String(last.globalPosition),
        })),
      );
    });

    it("stops every partition and rejects with the first failure", async () => {
      const store = await db.freshStore();
      const table = await createSeenTable(db, store);
      const ids = idsCoveringSegments(1);
      await seed(db, store, ids, 2);
      const poison = ids[5];
      const projection: Projection = {
        name: "fragile",
        async handle(event, tx) {
          if (event.aggregateId === poison) throw new Error(`cannot handle ${poison}`);
          await tx`insert into ${
            tx(table)
          } (projection, event_id) values ('fragile', ${event.eventId})`;
        },
      };

      // Continuous mode and no signal: only the failure can end this run.
      const error = await runProjectionPartitions(db.sql, store, projection, 4).then(
        () => assert.fail("expected a rejection"),
        (error: unknown) => error,
      );

      assert.ok(error instanceof ProjectionError, `got ${error}`);
      assert.equal(error.projection, "fragile");
      assert.equal(error.event.aggregateId, poison);
      assert.equal((error.cause as Error).message, `cannot handle ${poison}`);
    });

    it("resolves when the signal aborts, after every partition has stopped", async () => {
      const store = await db.freshStore();
      const table = await createSeenTable(db, store);
      const events = await seed(db, store, idsCoveringSegments(1), 2);
      const allSeen = deferred();
      const seen: string[] = [];
      const projection: Projection = {
        name: "watcher",
        async handle(event, tx) {
          seen.push(event.eventId);
          await tx`insert into ${
            tx(table)
          } (projection, event_id) values ('watcher', ${event.eventId})`;
          if (seen.length === events.length) allSeen.resolve();
        },
      };
      const controller = new AbortController();
      const run = runProjectionPartitions(db.sql, store, projection, 3, {
        signal: controller.signal,
      });
      await within(allSeen.promise, 10_000, "every event handled");
      // The handler ran inside the batch's transaction; abort once it has
      // committed (an abort rolls back the batch in flight).
      await waitFor(
        "every event committed",
        async () => (await committedIds(db, table, "watcher")).length === events.length,
      );
      controller.abort();
      const outcomes = await within(run, 10_000, "the run to end after the abort");
      assert.deepEqual(outcomes.map((o) => [o.partitionKey, o.status]), [
        [0, "aborted"],
        [1, "aborted"],
        [2, "aborted"],
      ]);
      assert.equal(outcomes.reduce((sum, o) => sum + o.processed, 0), events.length);
      assert.deepEqual(
        await committedIds(db, table, "watcher"),
        sorted(events.map((e) => e.eventId)),
      );
    });

    it("on abort, waits for a handler in flight before resolving", async () => {
      const store = await db.freshStore();
      await seed(db, store, idsCoveringSegments(1), 1);
      const inHandler = deferred();
      let exited = false;
      let calls = 0;
      const projection: Projection = {
        name: "busy",
        async handle() {
          if (++calls > 1) return;
          inHandler.resolve();
          await pause(100);
          exited = true;
        },
      };
      const controller = new AbortController();
      let exitedWhenSettled: boolean | undefined;
      const run = runProjectionPartitions(db.sql, store, projection, 4, {
        signal: controller.signal,
      }).then(() => {
        exitedWhenSettled = exited;
      });
      await within(inHandler.promise, 10_000, "the handler to be called");
      controller.abort();
      await within(run, 10_000, "the run to end after the abort");
      assert.equal(exitedWhenSettled, true);
    });

    it("starts nothing when the signal is already aborted", async () => {
      const store = await db.freshStore();
      await seed(db, store, ["a", "b"], 1);
      let calls = 0;
      await runProjectionPartitions(
        db.sql,
        store,
        {
          name: "never",
          handle() {
            calls++;
          },
        },
        2,
        { signal: AbortSignal.abort() },
      );
      assert.equal(calls, 0);
      const [{ count }] = await db.sql`
        select count(*)::int as count from ${db.sql(store.tables.checkpoints)}`;
      assert.equal(count, 0);
    });

    it("refuses bad input before starting anything", async () => {
      const store = await db.freshStore();
      let calls = 0;
      const projection: Projection = {
        name: "p",
        handle() {
          calls++;
        },
      };
      for (const total of [0, -1, 1.5, Number.NaN, "2"]) {
        await assert.rejects(
          runProjectionPartitions(db.sql, store, projection, total as number),
          (error: unknown) => error instanceof ValidationError && error.field === "totalPartitions",
        );
      }
      await assert.rejects(
        runProjectionPartitions(db.sql, store, projection, 2, {
          config: { partitionKey: 1 } as Record<string, unknown>,
        }),
        (error: unknown) =>
          error instanceof ValidationError && error.field === "options.config.partitionKey",
      );
      await assert.rejects(
        runProjectionPartitions(db.sql, store, projection, 2, { mode: "once" as "continuous" }),
        (error: unknown) => error instanceof ValidationError && error.field === "options.mode",
      );
      await assert.rejects(
        runProjectionPartitions(db.sql, store, { name: "", handle() {} }, 2),
        (error: unknown) => error instanceof ValidationError && error.field === "projection.name",
      );
      await assert.rejects(
        runProjectionPartitions(db.sql, store, { name: "x" } as Projection, 2),
        (error: unknown) => error instanceof ValidationError && error.field === "projection.handle",
      );
      // The processor's own checks run for every partition before any starts.
      await assert.rejects(
        runProjectionPartitions(db.sql, store, projection, 2, { config: { batchSize: 0 } }),
        ValidationError,
      );
      assert.equal(calls, 0);
    });
  });

  describe("runMultipleProjections", () => {
    it("delivers every event to every projection", async () => {
      const store = await db.freshStore();
      const table = await createSeenTable(db, store);
      const events = await seed(db, store, idsCoveringSegments(1), 3);
      const counter = recorder("counter", table);
      const audit = recorder("audit", table);
      // One projection split into two partitions in the same run.
      const split0 = recorder("split", table);
      const split1 = recorder("split", table);

      await caughtUp(runMultipleProjections(db.sql, store, [
        { projection: counter, config: { batchSize: 5 } },
        { projection: audit },
        { projection: split0, config: { partitionKey: 0, totalPartitions: 2 } },
        { projection: split1, config: { partitionKey: 1, totalPartitions: 2 } },
      ], { mode: "until_caught_up" }));

      const all = sorted(events.map((e) => e.eventId));
      assert.deepEqual(sorted(counter.seen), all);
      assert.deepEqual(sorted(audit.seen), all);
      assert.deepEqual(sorted([...split0.seen, ...split1.seen]), all);
      for (const name of ["counter", "audit", "split"]) {
        assert.deepEqual(await committedIds(db, table, name), all);
      }
      // Each partition handled its own share.
      assert.ok(split0.seen.length > 0 && split1.seen.length > 0);
    });

    it("stops the others when one fails, rejects with that failure, and only after all stopped", async () => {
      const store = await db.freshStore();
      await seed(db, store, idsCoveringSegments(1), 1);
      const failed = deferred();
      const slowStarted = deferred();
      const calls: string[] = [];
      const failing: Projection = {
        name: "failing",
        async handle(event) {
          calls.push("failing");
          // Fail only once the other projection is busy in a handler.
          await slowStarted.promise;
          failed.resolve();
          throw new Error(`no luck with ${event.aggregateId}`);
        },
      };
      let settled = false;
      let slowExited = false;
      let settledWhileSlowBusy: boolean | undefined;
      const slow: Projection = {
        name: "slow",
        async handle() {
          calls.push("slow");
          if (calls.filter((c) => c === "slow").length > 1) return;
          slowStarted.resolve();
          // Still busy in its first event when the other projection fails.
          await failed.promise;
          await pause(100);
          settledWhileSlowBusy = settled;
          slowExited = true;
        },
      };
      let slowExitedWhenSettled: boolean | undefined;

      // Continuous mode, no signal: only the failure can end this run.
      const error = await runMultipleProjections(db.sql, store, [
        { projection: failing },
        { projection: slow, config: { batchSize: 1 } },
      ]).then(
        () => assert.fail("expected a rejection"),
        (error: unknown) => {
          settled = true;
          slowExitedWhenSettled = slowExited;
          return error;
        },
      );

      assert.ok(error instanceof ProjectionError, `got ${error}`);
      assert.equal(error.projection, "failing");
      assert.match((error.cause as Error).message, /^no luck with /);
      assert.equal(settledWhileSlowBusy, false);
      assert.equal(slowExitedWhenSettled, true);
      assert.equal(calls.filter((c) => c === "failing").length, 1);
    });

    it("rejects with the first failure and logs later ones", async () => {
      const store = await db.freshStore();
      await seed(db, store, ["x", "y"], 1);
      const firstFailed = deferred();
      const secondStarted = deferred();
      const logged: { message: string; fields?: Record<string, unknown> }[] = [];
      const logger = {
        debug() {},
        info() {},
        error(message: string, fields?: Record<string, unknown>) {
          logged.push({ message, fields });
        },
      };
      const error = await runMultipleProjections(db.sql, store, [
        {
          projection: {
            name: "first",
            async handle() {
              await secondStarted.promise;
              firstFailed.resolve();
              throw new Error("first");
            },
          },
        },
        {
          projection: {
            name: "second",
            async handle() {
              secondStarted.resolve();
              await firstFailed.promise;
              // Long enough for the first failure's rollback to reach the runner first.
              await pause(500);
              throw new Error("second");
            },
          },
          config: { logger },
        },
      ]).then(() => assert.fail("expected a rejection"), (error: unknown) => error);

      assert.ok(error instanceof ProjectionError);
      assert.equal(error.projection, "first");
      const late = logged.filter((l) =>
        l.message === "projection worker failed while the runner was stopping"
      );
      assert.equal(late.length, 1);
      assert.equal(late[0].fields?.worker, "second");
      assert.ok(late[0].fields?.error instanceof ProjectionError);
    });

    it("resolves when the signal aborts", async () => {
      const store = await db.freshStore();
      const table = await createSeenTable(db, store);
      const events = await seed(db, store, ["a", "b", "c"], 2);
      const done = deferred();
      const seen = new Set<string>();
      const make = (name: string): Projection => ({
        name,
        async handle(event, tx) {
          await tx`insert into ${
            tx(table)
          } (projection, event_id) values (${name}, ${event.eventId})`;
          seen.add(`${name}/${event.eventId}`);
          if (seen.size === 2 * events.length) done.resolve();
        },
      });
      const controller = new AbortController();
      const run = runMultipleProjections(db.sql, store, [
        { projection: make("one") },
        { projection: make("two") },
      ], { signal: controller.signal });
      await within(done.promise, 10_000, "both projections to handle every event");
      await waitFor(
        "both projections to commit every event",
        async () =>
          (await committedIds(db, table, "one")).length === events.length &&
          (await committedIds(db, table, "two")).length === events.length,
      );
      controller.abort();
      const outcomes = await within(run, 10_000, "the run to end after the abort");
      assert.deepEqual(outcomes.map((o) => [o.projection, o.status, o.processed]), [
        ["one", "aborted", events.length],
        ["two", "aborted", events.length],
      ]);
      const all = sorted(events.map((e) => e.eventId));
      assert.deepEqual(await committedIds(db, table, "one"), all);
      assert.deepEqual(await committedIds(db, table, "two"), all);
    });

    it("refuses bad input before starting anything", async () => {
      const store = await db.freshStore();
      await seed(db, store, ["a"], 1);
      let calls = 0;
      const p = (name: string): Projection => ({
        name,
        handle() {
          calls++;
        },
      });
      const rejects = (
        entries: unknown,
        field: string,
      ) =>
        assert.rejects(
          runMultipleProjections(db.sql, store, entries as [], { mode: "until_caught_up" }),
          (error: unknown) => {
            assert.ok(error instanceof ValidationError, `got ${error}`);
            assert.equal(error.field, field);
            return true;
          },
        );

      await rejects([], "projections");
      await rejects(undefined, "projections");
      await rejects([{ projection: p("a") }, null], "projections[1]");
      await rejects(
        [{ projection: p("a") }, { projection: p("a") }],
        "projections[1].config.partitionKey",
      );
      await rejects(
        [
          { projection: p("a"), config: { partitionKey: 1, totalPartitions: 2 } },
          { projection: p("b") },
          { projection: p("a"), config: { partitionKey: 1, totalPartitions: 2 } },
        ],
        "projections[2].config.partitionKey",
      );
      await rejects(
        [
          { projection: p("a"), config: { partitionKey: 0, totalPartitions: 2 } },
          { projection: p("a"), config: { partitionKey: 1, totalPartitions: 4 } },
        ],
        "projections[1].config.totalPartitions",
      );
      await rejects(
        [
          { projection: p("a"), config: { partitionKey: 0, totalPartitions: 2, segments: 8 } },
          { projection: p("a"), config: { partitionKey: 1, totalPartitions: 2 } },
        ],
        "projections[1].config.segments",
      );
      await rejects([{ projection: { name: "a" } }], "projections[0].projection.handle");
      await rejects([{ projection: p("") }], "projections[0].projection.name");
      await rejects(
        [{ projection: { ...p("a"), aggregateTypes: [] } }],
        "projections[0].projection.aggregateTypes",
      );
      // The processor's own configuration checks.
      await assert.rejects(
        runMultipleProjections(db.sql, store, [
          { projection: p("a") },
          { projection: p("b"), config: { partitionKey: 2, totalPartitions: 2 } },
        ]),
        ValidationError,
      );
      assert.equal(calls, 0);
    });
  });

  describe("partitionConfigFromArgs", () => {
    it("defaults to partition 0 of 1", () => {
      assert.deepEqual(partitionConfigFromArgs([], {}), { partitionKey: 0, totalPartitions: 1 });
    });

    it("reads both flag forms", () => {
      assert.deepEqual(
        partitionConfigFromArgs(["--partition-key", "2", "--total-partitions=4"], {}),
        { partitionKey: 2, totalPartitions: 4 },
      );
      assert.deepEqual(
        partitionConfigFromArgs(["--total-partitions", "3", "--partition-key=0"], {}),
        { partitionKey: 0, totalPartitions: 3 },
      );
    });

    it("reads the environment, and flags win over it", () => {
      const env = { PARTITION_KEY: "3", TOTAL_PARTITIONS: "8" };
      assert.deepEqual(partitionConfigFromArgs([], env), { partitionKey: 3, totalPartitions: 8 });
      assert.deepEqual(
        partitionConfigFromArgs(["--partition-key=5"], env),
        { partitionKey: 5, totalPartitions: 8 },
      );
      assert.deepEqual(
        partitionConfigFromArgs(["--total-partitions=4"], { PARTITION_KEY: "1" }),
        { partitionKey: 1, totalPartitions: 4 },
      );
    });

    it("leaves the application's own flags and positionals alone", () => {
      assert.deepEqual(
        partitionConfigFromArgs(
          ["serve", "--verbose", "--port", "8080", "--partition-key=1", "--total-partitions=2"],
          {},
        ),
        { partitionKey: 1, totalPartitions: 2 },
      );
      // After "--" nothing is a flag.
      assert.deepEqual(
        partitionConfigFromArgs(["--", "--partition-key=1"], {}),
        { partitionKey: 0, totalPartitions: 1 },
      );
    });

    it("refuses bad values with the source in the error", () => {
      const cases: [string[], Record<string, string>, string, string][] = [
        [["--partition-key", "x"], {}, "--partition-key", '"x"'],
        [["--partition-key=-1", "--total-partitions=2"], {}, "--partition-key", '"-1"'],
        [["--partition-key=1.5"], {}, "--partition-key", '"1.5"'],
        [["--total-partitions=0"], {}, "--total-partitions", '"0"'],
        [["--total-partitions=1e3"], {}, "--total-partitions", '"1e3"'],
        [[], { PARTITION_KEY: "" }, "PARTITION_KEY", '""'],
        [[], { TOTAL_PARTITIONS: "four" }, "TOTAL_PARTITIONS", '"four"'],
        [["--partition-key=4", "--total-partitions=4"], {}, "--partition-key", "4"],
        [[], { PARTITION_KEY: "1" }, "PARTITION_KEY", "1"],
        [["--partition-key"], {}, "--partition-key", "none"],
        [
          ["--partition-key=1", "--partition-key=2"],
          {},
          "--partition-key",
          'it twice ("1" and "2")',
        ],
        [["--partitions=4"], {}, "--partitions", '"--partitions"'],
        [["--total-partition", "4"], {}, "--total-partition", '"--total-partition"'],
        [["--partiton-key", "1"], {}, "--partiton-key", '"--partiton-key"'],
        [["--totl-partitons=2"], {}, "--totl-partitons", '"--totl-partitons"'],
        [["--total-partitions", "2"], {}, "--partition-key", "none"],
        [[], { TOTAL_PARTITIONS: "3" }, "--partition-key", "none"],
      ];
      for (const [args, env, field, got] of cases) {
        assert.throws(() => partitionConfigFromArgs(args, env), (error: unknown) => {
          assert.ok(error instanceof ValidationError, `${args} ${JSON.stringify(env)}: ${error}`);
          assert.equal(error.field, field);
          assert.equal(error.got, got);
          return true;
        });
      }
    });

    it("explains a key outside the total", () => {
      assert.throws(
        () => partitionConfigFromArgs([], { PARTITION_KEY: "4", TOTAL_PARTITIONS: "4" }),
        {
          name: "ValidationError",
          message: "Invalid PARTITION_KEY: expected a partition key below the total partitions " +
            "(4, from TOTAL_PARTITIONS), so in 0..3, got 4",
        },
      );
    });
  });
});
