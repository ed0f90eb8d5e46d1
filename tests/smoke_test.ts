import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { json, setupDatabase, type TestDb } from "./_db.ts";

describe("smoke", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("appends and reads", async () => {
    const store = await db.freshStore();
    const r = await store.append(db.sql, [{
      aggregateType: "A",
      aggregateId: "1",
      eventType: "E",
      payload: json({}),
    }]);
    assert.deepEqual(r.globalPositions, [1n]);
  });
});
