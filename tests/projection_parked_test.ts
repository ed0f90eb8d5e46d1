import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type PersistedEvent, ValidationError } from "../src/es/mod.ts";
import {
  discardParked,
  listParked,
  type Projection,
  ProjectionProcessor,
  replayParked,
} from "../src/projection/mod.ts";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runDenoScript } from "./_cli.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  createReadModel,
  readModelProjection,
  within,
} from "./_projection.ts";

const ids = (events: readonly PersistedEvent[]) => events.map((e) => e.eventId);

describe("parked events: list, replay, discard", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** A store whose projection "p" parked appended[1] (acc-0) and held the rest of acc-0. */
  async function parkedStore(poisonIndexes = [1]) {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const appended = await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 4 });
    const poison = new Set(poisonIndexes.map((i) => appended[i].globalPosition));
    const model = readModelProjection(store, "p");
    const broken: Projection = {
      ...model,
      onError: { then: "park" },
      async handle(event, tx) {
        if (poison.has(event.globalPosition)) throw new Error("broken");
        await model.handle(event, tx);
      },
    };
    await caughtUp(new ProjectionProcessor(db.sql, store).run(broken, { mode: "until_caught_up" }));
    const order: bigint[] = [];
    const fixed: Projection = {
      ...model,
      onError: { then: "park" },
      async handle(event, tx) {
        order.push(event.globalPosition);
        await model.handle(event, tx);
      },
    };
    return { store, appended, broken, fixed, order };
  }

  it("lists what is parked, with the event, the error, the attempts and the times", async () => {
    const { store, appended } = await parkedStore();
    const parked = await listParked(db.sql, store, { projection: "p" });
    assert.deepEqual(parked.map((p) => p.event), appended.slice(1, 4));
    assert.deepEqual(parked.map((p) => [p.reason, p.status, p.attempts, p.error]), [
      ["failed", "parked", 1, "Error: broken"],
      ["held", "parked", 0, null],
      ["held", "parked", 0, null],
    ]);
    assert.ok(parked.every((p) => p.parkedAt instanceof Date && p.projection === "p"));
    assert.deepEqual(await listParked(db.sql, store, { projection: "other" }), []);
    await assert.rejects(
      listParked(db.sql, store, { status: "gone" as "parked" }),
      (e: unknown) => e instanceof ValidationError && e.field === "options.status",
    );
  });

  it("replays in each aggregate's order, exactly once, to the read model of a run without failures", async () => {
    const { store, appended, fixed, order } = await parkedStore();
    const outcome = await within(replayParked(db.sql, store, fixed), 20_000, "the replay");
    assert.deepEqual(outcome, { resolved: 3, failed: 0 });
    assert.deepEqual(order, appended.slice(1, 4).map((e) => e.globalPosition));
    assert.deepEqual(await listParked(db.sql, store, { projection: "p" }), []);
    const resolved = await listParked(db.sql, store, { projection: "p", status: "resolved" });
    assert.equal(resolved.length, 3);
    const applied = await appliedTimes(db.sql, store);
    assert.deepEqual(new Set(applied.keys()), new Set(ids(appended)));
    assert.ok([...applied.values()].every((times) => times === 1));
    // Nothing left: a second replay does nothing; the processor now applies acc-0's new events.
    assert.deepEqual(await within(replayParked(db.sql, store, fixed), 20_000, "the replay"), {
      resolved: 0,
      failed: 0,
    });
    const [next] = await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 1 });
    await caughtUp(new ProjectionProcessor(db.sql, store).run(fixed, { mode: "until_caught_up" }));
    assert.equal((await appliedTimes(db.sql, store)).get(next.eventId), 1);
  });

  it("an event that fails again stays parked, with its attempts and error, and holds its aggregate", async () => {
    const { store, appended, broken } = await parkedStore();
    const outcome = await within(replayParked(db.sql, store, broken), 20_000, "the replay");
    assert.deepEqual(outcome, { resolved: 0, failed: 1 });
    const parked = await listParked(db.sql, store, { projection: "p" });
    assert.deepEqual(
      parked.map((p) => p.event.globalPosition),
      appended.slice(1, 4).map((e) => e.globalPosition),
    );
    assert.equal(parked[0].attempts, 2);
    assert.ok(parked[0].updatedAt >= parked[0].parkedAt);
    assert.ok(!(await appliedTimes(db.sql, store)).has(appended[2].eventId));
  });

  it("with eventIds, replays only those, and never past an earlier parked event of their aggregate", async () => {
    const { store, appended, fixed, order } = await parkedStore();
    assert.deepEqual(
      await replayParked(db.sql, store, fixed, { eventIds: [appended[2].eventId] }),
      { resolved: 0, failed: 0 },
    );
    assert.deepEqual(
      await replayParked(db.sql, store, fixed, { eventIds: ids(appended.slice(1, 3)) }),
      { resolved: 2, failed: 0 },
    );
    assert.deepEqual(order, appended.slice(1, 3).map((e) => e.globalPosition));
    assert.deepEqual(
      (await listParked(db.sql, store)).map((p) => p.event.eventId),
      [appended[3].eventId],
    );
  });

  it("discards, keeping the rows for audit", async () => {
    const { store, appended } = await parkedStore();
    const aggregate = { type: "Account", id: "acc-0" };
    assert.equal(await discardParked(db.sql, store, "p", { eventIds: [appended[1].eventId] }), 1);
    assert.equal(await discardParked(db.sql, store, "p", { aggregate }), 2);
    assert.equal(await discardParked(db.sql, store, "p"), 0);
    const discarded = await listParked(db.sql, store, { status: "discarded" });
    assert.deepEqual(discarded.map((p) => p.event), appended.slice(1, 4));
    await assert.rejects(
      discardParked(db.sql, store, "p", { eventIds: ["nope"] }),
      (e: unknown) => e instanceof ValidationError && e.field === "filter.eventIds",
    );
  });

  const isDeno = "Deno" in globalThis;
  it(
    "the parked command lists, replays from a module, and discards",
    { skip: !isDeno },
    async () => {
      const { store, appended } = await parkedStore([1, 5]);
      const schema = store.tables.schema!;
      const base = ["--database-url", db.url, "--schema", schema];
      const script = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
      const parked = (args: string[]) => runDenoScript(script, ["parked", ...args]);
      const listed = await parked(["list", ...base, "--projection", "p"]);
      assert.equal(listed.code, 0, listed.stderr);
      const lines = listed.stdout.trim().split("\n").map((line) => line.split("\t"));
      assert.deepEqual(
        lines.map((l) => l[1]),
        [1, 2, 3, 5, 6, 7].map((i) => String(appended[i].globalPosition)),
      );
      assert.deepEqual(lines.map((l) => l[6]), [
        "failed",
        "held",
        "held",
        "failed",
        "held",
        "held",
      ]);

      const asJson = JSON.parse((await parked(["list", ...base, "--json"])).stdout);
      assert.deepEqual(
        asJson.map((p: { reason: string; event: { globalPosition: string } }) => [
          p.event.globalPosition,
          p.reason,
        ]),
        lines.map((l) => [l[1], l[6]]),
      );

      const discarded = await parked([
        "discard",
        ...base,
        "--projection",
        "p",
        "--event-id",
        appended[5].eventId,
      ]);
      assert.equal(discarded.stdout, "Discarded 1 parked event(s)\n");

      const dir = await mkdtemp(join(tmpdir(), "parked-"));
      try {
        const module = join(dir, "fixed.ts");
        await writeFile(
          module,
          `import { PostgresStore } from ${
            JSON.stringify(new URL("../src/postgres/mod.ts", import.meta.url).href)
          };
import { readModelProjection } from ${
            JSON.stringify(new URL("./_projection.ts", import.meta.url).href)
          };
export const fixed = readModelProjection(new PostgresStore({ schema: ${
            JSON.stringify(schema)
          } }), "p");
`,
        );
        const replayed = await parked([
          "replay",
          ...base,
          "--module",
          module,
          "--projection",
          "p",
        ]);
        assert.equal(
          replayed.stdout,
          "Replayed 5 parked event(s); 0 failed again\n",
          replayed.stderr,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const applied = await appliedTimes(db.sql, store);
      assert.deepEqual(new Set(applied.keys()), new Set(ids(appended.filter((_, i) => i !== 5))));

      const bad = await parked(["discard", ...base]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /discard needs --projection/);
    },
  );
});
