/**
 * The specification helpers: each passes on a right expectation and
 * fails on a wrong one (a spec that cannot fail guards nothing).
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { migrate } from "../src/postgres/mod.ts";
import { typedProjection } from "../src/projection/mod.ts";
import { deciderSpec, projectionSpec } from "../src/testing/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  type AccountEvent,
  codec,
  deposit,
  InsufficientFunds,
  open,
  options,
  withdraw,
} from "./_bank.ts";

let database: TestDb;
let sql: postgres.Sql;
before(async () => {
  database = await setupDatabase();
  sql = database.client({}, await database.createDatabase());
  await migrate(sql);
});
after(() => database.close());

const opened: AccountEvent = { type: "Opened", data: { owner: "ann" } };
const deposited = (amount: bigint): AccountEvent => ({ type: "Deposited", data: { amount } });

describe("deciderSpec", () => {
  const spec = deciderSpec(options);

  it("passes when the command decides the expected events or throws the expected error", async () => {
    await spec.given([opened, deposited(5n)]).when(withdraw(5n)).then([
      { type: "Withdrawn", data: { amount: 5n } },
    ]);
    await spec.given([]).when(open("ann")).then([opened]);
    await spec.given([opened]).when(withdraw(1n)).thenThrows(InsufficientFunds);
    await spec.given([opened]).when(withdraw(1n)).thenThrows((e) => e instanceof InsufficientFunds);
    await spec.given([opened]).when(withdraw(1n)).thenThrows();
  });

  it("fails on wrong events, on a missing throw and on the wrong error", async () => {
    await assert.rejects(
      spec.given([opened]).when(deposit(5n)).then([deposited(6n)]),
      (error: unknown) =>
        error instanceof assert.AssertionError && /events decided/.test(error.message),
    );
    await assert.rejects(
      spec.given([opened, deposited(5n)]).when(withdraw(5n)).thenThrows(InsufficientFunds),
      assert.AssertionError,
    );
    await assert.rejects(
      spec.given([]).when(deposit(5n)).thenThrows(InsufficientFunds),
      assert.AssertionError,
    );
  });
});

const balances = typedProjection<AccountEvent>({
  name: "balances",
  codec,
  aggregateTypes: ["Account"],
  async init(tx) {
    await tx`create table if not exists balances (id text primary key, amount bigint not null)`;
  },
  handlers: {
    async Deposited(event, tx, stored) {
      await tx`insert into balances values (${stored.aggregateId}, ${String(event.data.amount)})
        on conflict (id) do update set amount = balances.amount + excluded.amount`;
    },
    async Withdrawn(event, tx, stored) {
      await tx`update balances set amount = amount - ${String(event.data.amount)}
        where id = ${stored.aggregateId}`;
    },
  },
});

describe("projectionSpec", () => {
  const given = [
    { aggregateType: "Account", aggregateId: "a", ...deposited(5n) },
    { aggregateType: "Account", aggregateId: "a", ...deposited(7n) },
    { aggregateType: "Account", aggregateId: "a", type: "Withdrawn", data: { amount: 2n } },
    // Out of scope: another aggregate type.
    { aggregateType: "Ledger", aggregateId: "a", ...deposited(100n) },
  ] as const;
  const amount = async (tx: postgres.TransactionSql) =>
    (await tx`select amount::int from balances where id = 'a'`)[0]?.amount;

  it("runs the projection over the events in scope and hands over the transaction", async () => {
    const spec = projectionSpec(balances, { sql });
    await spec.given(given).then(async (tx) => assert.equal(await amount(tx), 10));
    // Each run is rolled back: the next starts empty.
    await spec.given([]).then(async (tx) => assert.equal(await amount(tx), undefined));
    await spec.close();
  });

  it("fails when the read model is not what the test expects", async () => {
    const spec = projectionSpec(balances, { sql });
    await assert.rejects(
      spec.given(given).then(async (tx) => assert.equal(await amount(tx), 110)),
      assert.AssertionError,
    );
  });

  it("starts its own throwaway PostgreSQL when given no client", async () => {
    const spec = projectionSpec(balances);
    try {
      await spec.given(given.slice(0, 1)).then(async (tx) => assert.equal(await amount(tx), 5));
    } finally {
      await spec.close();
    }
  });
});
