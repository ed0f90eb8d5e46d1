import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import type { PersistedEvent } from "../src/es/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { fixtureCommand } from "./_child.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  createReadModel,
  readModelProjection,
  waitUntil,
} from "./_projection.ts";

/** A worker process on the runtime (and the build of the library) this test runs on. */
function startWorker(url: string, schema: string, key: number, total: number): ChildProcess {
  const [command, args] = fixtureCommand("projection_worker", [
    url,
    schema,
    "crashing",
    String(key),
    String(total),
  ]);
  return spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

describe("projection crash safety", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("applies every event exactly once across SIGKILLed and restarted workers", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const schema = store.tables.schema!;
    const all: PersistedEvent[] = await appendEvents(db.sql, store, {
      prefix: "r0",
      aggregates: 40,
      perAggregate: 8,
    });
    const applied = async () => (await appliedTimes(db.sql, store)).size;
    let killedMidRun = 0;
    for (let round = 1; round <= 4; round++) {
      const from = await applied();
      const workers = [0, 1].map((key) => startWorker(db.url, schema, key, 2));
      let stderr = "";
      for (const w of workers) w.stderr!.on("data", (chunk) => stderr += chunk);
      try {
        // Kill them once they have made some progress, wherever they are.
        await waitUntil(`round ${round}: workers to make progress`, async () => {
          if (workers.some((w) => w.exitCode !== null)) throw new Error(stderr);
          return await applied() >= Math.min(from + 60, all.length);
        }, 20_000);
      } finally {
        await Promise.all(workers.map(kill));
      }
      if (await applied() < all.length) killedMidRun++;
      all.push(
        ...await appendEvents(db.sql, store, {
          prefix: `r${round}`,
          aggregates: 10,
          perAggregate: 3,
        }),
      );
    }
    assert.ok(killedMidRun > 0, "at least one round was killed before catching up");
    // A last worker, in this process, finishes the job.
    await caughtUp(
      new ProjectionProcessor(db.sql, store).run(readModelProjection(store, "crashing"), {
        mode: "until_caught_up",
      }),
    );
    const times = await appliedTimes(db.sql, store);
    assert.equal(times.size, all.length);
    assert.deepEqual(new Set(times.keys()), new Set(all.map((e) => e.eventId)));
    assert.deepEqual([...new Set(times.values())], [1]);
  });
});
