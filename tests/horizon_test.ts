import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { holdTransaction, json, setupDatabase, type TestDb } from "./_db.ts";

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

  /** The safe horizon as a session of `db` sees it now. */
  const snapshotXmin = async () => {
    const [{ xmin }] = await db.sql`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`;
    return BigInt(xmin);
  };

  it("names the open writing transaction that holds committed events back", async () => {
    const store = await db.freshStore();
    const blocker = db.client({ max: 1, connection: { application_name: "forgotten-tx" } });
    const held = await holdTransaction(blocker);
    await store.append(held.tx, [event("a")]);
    const [{ xid, pid }] = await held.tx`
      select pg_current_xact_id()::text as xid, pg_backend_pid() as pid`;
    const blockerXid = BigInt(xid);
    await store.append(db.sql, [event("b"), { ...event("b"), eventType: "Funded" }]);

    const before = await snapshotXmin();
    const report = await store.inspectHorizon(db.sql);
    const afterwards = await snapshotXmin();
    // The horizon is the oldest running transaction id, as the database
    // reports it meanwhile: the blocker's, unless an older one runs on a
    // shared server.
    assert.ok(
      before <= report.horizon && report.horizon <= afterwards,
      `horizon ${report.horizon} outside [${before}, ${afterwards}]`,
    );
    assert.ok(report.horizon <= blockerXid, `horizon ${report.horizon} > blocker ${blockerXid}`);
    if (before === blockerXid) assert.equal(report.horizon, blockerXid);
    assert.equal(report.pendingEvents, 2n);

    // The blocker, found by the pid of its own connection.
    const blockers = report.blockers.filter((b) => b.pid === pid);
    assert.equal(blockers.length, 1, `pid ${pid} in ${JSON.stringify(report.blockers)}`);
    const [mine] = blockers;
    assert.equal(mine.applicationName, "forgotten-tx");
    assert.equal(mine.state, "idle in transaction");
    // Two transaction ids since the blocker's: b's append, and the next one.
    assert.ok(mine.xidAge >= 2, `xidAge ${mine.xidAge}`);
    assert.ok(mine.transactionStartedAt instanceof Date);
    const ages = report.blockers.map((b) => b.xidAge);
    assert.deepEqual(ages, [...ages].sort((x, y) => y - x), "oldest first");
    if (report.horizon === blockerXid) assert.equal(report.blockers[0].pid, pid);
    assert.deepEqual(await store.readEvents(db.sql), []);

    await held.commit();
    const cleared = await store.inspectHorizon(db.sql);
    assert.equal(cleared.pendingEvents, 0n);
    assert.ok(cleared.horizon > blockerXid, `horizon ${cleared.horizon} still at the blocker`);
    assert.equal(cleared.blockers.some((b) => b.pid === pid), false);
    assert.deepEqual((await store.readEvents(db.sql)).map((e) => e.aggregateId), ["a", "b", "b"]);
  });
});
