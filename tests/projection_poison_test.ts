import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import type { PersistedEvent } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { type ErrorPolicy, ProjectionProcessor, replayParked } from "../src/projection/mod.ts";
import { fixtureCommand } from "./_child.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  balanceProjection,
  balancesOf,
  createBalances,
  isFlaky,
  isPoison,
  parkedOf,
  violationsOf,
} from "./_poison.ts";
import { appendEvents, caughtUp, within } from "./_projection.ts";

/** A worker or replayer process on the runtime (and the build of the library) this test runs on. */
function start(url: string, schema: string, args: string[]): ChildProcess {
  const [command, argv] = fixtureCommand("poison_worker", [url, schema, "poisoned", ...args]);
  return spawn(command, argv, { stdio: ["ignore", "ignore", "pipe"] });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** The poison events, and the events of their aggregates that come after them. */
function poisonAndHeld(all: readonly PersistedEvent[]) {
  const poison = all.filter(isPoison);
  const held = all.filter((e) =>
    poison.some((p) => p.aggregateId === e.aggregateId && e.aggregateVersion > p.aggregateVersion)
  );
  return { poison, held };
}

/** Asserts the state after a failing run: good events applied, poison parked once, held in order. */
async function assertParked(
  db: TestDb,
  store: PostgresStore,
  all: readonly PersistedEvent[],
  perAggregate: number,
) {
  const { poison, held } = poisonAndHeld(all);
  assert.ok(poison.length > 0 && all.some(isFlaky));
  const parked = await parkedOf(db.sql, store, "poisoned");
  const expected = new Map<bigint, [string, string]>([
    ...poison.map((e): [bigint, [string, string]] => [e.globalPosition, ["parked", "failed"]]),
    ...held.map((e): [bigint, [string, string]] => [e.globalPosition, ["parked", "held"]]),
  ]);
  assert.deepEqual(parked, expected);
  const balances = await balancesOf(db.sql, store, "poisoned");
  const stuck = new Map(poison.map((p) => [p.aggregateId, p.aggregateVersion - 1n]));
  for (const [id, [version]] of balances) {
    assert.equal(version, stuck.get(id) ?? BigInt(perAggregate), id);
  }
  assert.equal(balances.size, new Set(all.map((e) => e.aggregateId)).size);
  assert.equal(await violationsOf(db.sql, store, "poisoned"), 0);
}

/** Asserts that the replayed read model is the one a run without failures builds. */
async function assertLikeClean(db: TestDb, store: PostgresStore) {
  await caughtUp(new ProjectionProcessor(db.sql, store).run(
    balanceProjection(store, "clean", { failing: false }),
    { mode: "until_caught_up" },
  ));
  assert.deepEqual(
    await balancesOf(db.sql, store, "poisoned"),
    await balancesOf(db.sql, store, "clean"),
  );
  assert.equal(await violationsOf(db.sql, store, "poisoned"), 0);
  const parked = await parkedOf(db.sql, store, "poisoned");
  assert.ok([...parked.values()].every(([status]) => status === "resolved"));
}

describe("poison events at scale and across crashes", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it(
    "10,000 events over 4 workers: good ones once, poison parked once, aggregates held in order; replay completes",
    {
      timeout: 240_000,
    },
    async () => {
      const store = await db.freshStore();
      await createBalances(db.sql, store);
      const all = await appendEvents(db.sql, store, { aggregates: 500, perAggregate: 20 });
      assert.equal(all.length, 10_000);
      const onError: ErrorPolicy = {
        retries: 2,
        backoff: { initialMs: 5, maxMs: 20 },
        then: "park",
      };
      const outcomes = await within(
        Promise.all(
          [0, 1, 2, 3].map((partitionKey) =>
            new ProjectionProcessor(db.client(), store, { partitionKey, totalPartitions: 4 }).run(
              balanceProjection(store, "poisoned", { failing: true, onError }),
              { mode: "until_caught_up" },
            )
          ),
        ),
        180_000,
        "4 workers catching up on 10,000 events",
      );
      const { poison, held } = poisonAndHeld(all);
      // Every worker caught up: no poison stopped any segment for good.
      assert.ok(outcomes.every((o) => o.status === "caught_up"));
      assert.equal(outcomes.reduce((n, o) => n + o.parked, 0), poison.length + held.length);
      // Two retries per poison event, and two failures per flaky one before it succeeds.
      assert.equal(outcomes.reduce((n, o) => n + o.retried, 0), 2 * poison.length + 2 * 10);
      await assertParked(db, store, all, 20);

      const fixed = balanceProjection(store, "poisoned", { failing: false });
      assert.deepEqual(await within(replayParked(db.sql, store, fixed), 60_000, "the replay"), {
        resolved: poison.length + held.length,
        failed: 0,
      });
      await assertLikeClean(db, store);
    },
  );

  it("SIGKILL during retries, parking and replay, several rounds: nothing lost, nothing twice", {
    timeout: 240_000,
  }, async () => {
    const store = await db.freshStore();
    await createBalances(db.sql, store);
    const schema = store.tables.schema!;
    const all = await appendEvents(db.sql, store, { aggregates: 200, perAggregate: 10 });
    const progress = async () => {
      const [{ n }] = await db.sql.unsafe(
        `select (select coalesce(sum(version), 0) from ${schema}.balances where projection = 'poisoned')
          + (select count(*) from ${store.tables.parkedEvents} where status <> 'parked') as n`,
      );
      return Number(n);
    };

    // Workers killed wherever they are: in a batch, waiting for a retry, parking.
    let killedMidRun = 0;
    for (let round = 1; round <= 3; round++) {
      const from = await progress();
      const workers = [0, 1].map((key) => start(db.url, schema, ["run", String(key), "2"]));
      let stderr = "";
      for (const w of workers) w.stderr!.on("data", (chunk) => stderr += chunk);
      try {
        await within(
          (async () => {
            while (await progress() < Math.min(from + 300, all.length)) {
              if (workers.some((w) => w.exitCode !== null)) throw new Error(stderr);
              await new Promise((r) => setTimeout(r, 10));
            }
          })(),
          30_000,
          `round ${round}: workers made progress`,
        );
      } finally {
        await Promise.all(workers.map(kill));
      }
      if ((await parkedOf(db.sql, store, "poisoned")).size < 24) killedMidRun++;
    }
    assert.ok(killedMidRun > 0, "at least one round was killed before parking everything");
    const onError: ErrorPolicy = { retries: 2, backoff: { initialMs: 5, maxMs: 20 }, then: "park" };
    await caughtUp(new ProjectionProcessor(db.sql, store, { segments: 8 }).run(
      balanceProjection(store, "poisoned", { failing: true, onError }),
      { mode: "until_caught_up" },
    ));
    await assertParked(db, store, all, 10);

    // Replays killed mid-way.
    const resolved = async () =>
      [...(await parkedOf(db.sql, store, "poisoned")).values()]
        .filter(([status]) => status === "resolved").length;
    let killedMidReplay = 0;
    for (let round = 1; round <= 3; round++) {
      const from = await resolved();
      const replayer = start(db.url, schema, ["replay"]);
      let stderr = "";
      replayer.stderr!.on("data", (chunk) => stderr += chunk);
      try {
        await within(
          (async () => {
            while (await resolved() < from + 3 && replayer.exitCode === null) {
              await new Promise((r) => setTimeout(r, 5));
            }
            if (replayer.exitCode !== null && replayer.exitCode !== 0) throw new Error(stderr);
          })(),
          30_000,
          `replay round ${round}: progress`,
        );
      } finally {
        await kill(replayer);
      }
      if (await resolved() < 24) killedMidReplay++;
    }
    assert.ok(killedMidReplay > 0, "at least one replay was killed before it finished");
    await within(
      replayParked(db.sql, store, balanceProjection(store, "poisoned", { failing: false })),
      60_000,
      "the last replay",
    );
    await assertLikeClean(db, store);
  });
});
