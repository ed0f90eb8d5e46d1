/**
 * typedProjection under the real processor: handlers get typed events,
 * the scope (the handlers' event types) is filtered in SQL, and bad
 * definitions are refused.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { handleCommand, UnknownEventTypeError, ValidationError } from "../src/es/mod.ts";
import { ProjectionProcessor, typedProjection } from "../src/projection/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { type AccountEvent, codec, deposit, open, options, withdraw } from "./_bank.ts";

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());

describe("typedProjection", () => {
  it("hands each handler its typed event, and reads only the handlers' types", async () => {
    const store = await database.freshStore();
    const sql = database.sql;
    const account = { aggregateType: "Account", aggregateId: "a" };
    await handleCommand(store, sql, account, open("ann"), options);
    await handleCommand(store, sql, account, deposit(30n), options);
    await handleCommand(store, sql, account, withdraw(12n), options);
    const seen: string[] = [];
    const amounts = typedProjection<AccountEvent>({
      name: "amounts",
      codec,
      handlers: {
        Deposited(event) {
          // Typed: event.data.amount is a bigint.
          seen.push(`+${event.data.amount + 0n}`);
        },
        Withdrawn(event, _tx, stored) {
          seen.push(`-${event.data.amount} at v${stored.aggregateVersion}`);
        },
      },
    });
    assert.deepEqual(amounts.eventTypes, ["Deposited", "Withdrawn"]);
    // Opened has no handler, so it is outside the scope the processor filters on.
    await new ProjectionProcessor(sql, store).run(amounts, { mode: "until_caught_up" });
    assert.deepEqual(seen, ["+30", "-12 at v3"]);
  });

  it("refuses a handler of a type the codec does not know, and no handlers", () => {
    assert.throws(
      () => typedProjection<AccountEvent>({ name: "x", codec, handlers: { Closed() {} } as never }),
      (error: unknown) => error instanceof UnknownEventTypeError && error.eventType === "Closed",
    );
    assert.throws(
      () => typedProjection<AccountEvent>({ name: "x", codec, handlers: {} }),
      (error: unknown) => error instanceof ValidationError && error.field === "options.handlers",
    );
  });
});
