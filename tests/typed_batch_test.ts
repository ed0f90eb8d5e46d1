/**
 * A typed projection's batch handler under the real processor: one call
 * per batch, and, when it fails, the batch again one event at a time, so
 * the error policy meets the event that fails and every other event is
 * applied once.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { ValidationError } from "../src/es/mod.ts";
import { listParked, ProjectionProcessor, typedProjection } from "../src/projection/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { type AccountEvent, codec } from "./_bank.ts";

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());

/** Appends one deposit per amount, each to an account of its own. */
async function deposits(store: Awaited<ReturnType<TestDb["freshStore"]>>, amounts: bigint[]) {
  for (const [i, amount] of amounts.entries()) {
    await store.append(database.sql, [{
      aggregateType: "Account",
      aggregateId: `acc-${i}`,
      ...codec.encode({ type: "Deposited", data: { amount } }),
    }]);
  }
}

describe("typedProjection with a batch handler", () => {
  it("gets each batch's events in one call, decoded and in log order", async () => {
    const store = await database.freshStore();
    await deposits(store, Array.from({ length: 25 }, (_, i) => BigInt(i + 1)));
    const calls: bigint[][] = [];
    const totals = typedProjection<AccountEvent>({
      name: "totals",
      codec,
      eventTypes: ["Deposited"],
      batch(events, _tx, stored) {
        assert.equal(events.length, stored.length);
        calls.push(events.map((event) => (event.data as { amount: bigint }).amount));
      },
    });
    const processor = new ProjectionProcessor(database.sql, store, { batchSize: 10 });
    await processor.run(totals, { mode: "until_caught_up" });
    assert.deepEqual(calls.flat(), Array.from({ length: 25 }, (_, i) => BigInt(i + 1)));
    assert.ok(calls.length <= 3, `expected at most 3 calls for 25 events, got ${calls.length}`);
  });

  it("runs a failed batch again one event at a time: the poison event is parked, the rest applied once", async () => {
    const store = await database.freshStore();
    await deposits(store, [1n, 2n, 3n, -1n, 5n, 6n]);
    await database.sql`create table if not exists batch_applied (amount bigint not null)`;
    const totals = typedProjection<AccountEvent>({
      name: "totals_park",
      codec,
      eventTypes: ["Deposited"],
      async batch(events, tx) {
        const amounts = events.map((event) => (event.data as { amount: bigint }).amount);
        for (const amount of amounts) {
          await tx`insert into batch_applied values (${String(amount)}::bigint)`;
        }
        if (amounts.some((amount) => amount < 0n)) throw new Error("negative deposit");
      },
    });
    const processor = new ProjectionProcessor(database.sql, store, {
      batchSize: 100,
      onError: { then: "park" },
    });
    const outcome = await processor.run(totals, { mode: "until_caught_up" });
    // Every good event once; the failed calls' writes rolled back with them.
    const rows = await database.sql`select amount::text from batch_applied order by amount`;
    assert.deepEqual(rows.map((row) => row.amount), ["1", "2", "3", "5", "6"]);
    assert.equal(outcome.parked, 1);
    const parked = await listParked(database.sql, store, { projection: "totals_park" });
    assert.deepEqual(parked.map((p) => p.event.aggregateId), ["acc-3"]);
  });

  it("refuses batch together with handlers, and eventTypes without batch", () => {
    assert.throws(
      () =>
        typedProjection<AccountEvent>({ name: "x", codec, batch() {}, handlers: { Opened() {} } }),
      (error: unknown) => error instanceof ValidationError && error.field === "options.handlers",
    );
    assert.throws(
      () =>
        typedProjection<AccountEvent>({
          name: "x",
          codec,
          eventTypes: ["Opened"],
          handlers: { Opened() {} },
        }),
      (error: unknown) => error instanceof ValidationError && error.field === "options.eventTypes",
    );
  });
});
