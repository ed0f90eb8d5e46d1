import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { json, setupDatabase, type TestDb } from "./_db.ts";

const event = (aggregateId: string) => ({
  aggregateType: "Account",
  aggregateId,
  eventType: "Opened",
  payload: json({ aggregateId }),
});

describe("inspectHorizon", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("names the open writing transaction that holds committed events back", async () => {
    const store = await db.freshStore();
    const blocker = db.client({ max: 1, connection: { application_name: "forgotten-tx" } });
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let appended!: () => void;
    const started = new Promise<void>((resolve) => appended = resolve);
    const open = blocker.begin(async (tx) => {
      await store.append(tx, [event("a")]);
      appended();
      await held;
    });
    await started;
    await store.append(db.sql, [event("b"), { ...event("b"), eventType: "Funded" }]);

    const report = await store.inspectHorizon(db.sql);
    assert.equal(report.pendingEvents, 2n);
    const [oldest] = report.blockers;
    assert.equal(oldest.applicationName, "forgotten-tx");
    assert.equal(oldest.state, "idle in transaction");
    assert.equal(typeof oldest.pid, "number");
    assert.ok(oldest.xidAge >= 1, `xidAge ${oldest.xidAge}`);
    assert.deepEqual(await store.readEvents(db.sql), []);

    release();
    await open;
    const cleared = await store.inspectHorizon(db.sql);
    assert.equal(cleared.pendingEvents, 0n);
    assert.equal(cleared.blockers.some((b) => b.applicationName === "forgotten-tx"), false);
    assert.deepEqual((await store.readEvents(db.sql)).map((e) => e.aggregateId), ["a", "b", "b"]);
  });
});
