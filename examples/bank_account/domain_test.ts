/**
 * The bank account's tests, with the specification helpers: the deciders
 * on the in-memory store, the read model on a throwaway PostgreSQL.
 *
 *     deno test -A examples/bank_account/
 *
 * @module
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { deciderSpec, projectionSpec } from "../../src/testing/mod.ts";
import {
  accountDecider,
  type AccountEvent,
  AccountRuleError,
  close,
  deposit,
  open,
  withdraw,
} from "./domain.ts";
import { accountBalances } from "./read_model.ts";

const opened: AccountEvent = { type: "AccountOpened", data: { owner: "ann" } };
const deposited = (cents: bigint): AccountEvent => ({ type: "MoneyDeposited", data: { cents } });
const withdrawn = (cents: bigint): AccountEvent => ({ type: "MoneyWithdrawn", data: { cents } });

describe("the account decider", () => {
  const spec = deciderSpec(accountDecider);

  it("opens an account once", async () => {
    await spec.given([]).when(open("ann")).then([opened]);
    await spec.given([opened]).when(open("ann")).thenThrows(AccountRuleError);
  });

  it("withdraws only what is there", async () => {
    await spec.given([opened, deposited(500n)]).when(withdraw(200n)).then([withdrawn(200n)]);
    await spec.given([opened, deposited(500n)]).when(withdraw(501n)).thenThrows(AccountRuleError);
    await spec.given([opened]).when(deposit(-1n)).thenThrows(AccountRuleError);
  });

  it("pays out the balance when it closes", async () => {
    await spec.given([opened, deposited(70n)]).when(close()).then([
      withdrawn(70n),
      { type: "AccountClosed", data: null },
    ]);
    await spec.given([opened]).when(close()).then([{ type: "AccountClosed", data: null }]);
  });
});

describe("the balances read model", () => {
  const spec = projectionSpec(accountBalances);
  after(() => spec.close());

  it("keeps each account's balance", async () => {
    const at = (id: string, event: AccountEvent) => ({
      aggregateType: "Account",
      aggregateId: id,
      ...event,
    });
    await spec.given([
      at("a", opened),
      at("a", deposited(500n)),
      at("a", withdrawn(120n)),
      at("b", { type: "AccountOpened", data: { owner: "bob" } }),
    ]).then(async (tx) => {
      const rows = await tx`select account_id, balance::int from account_balances order by 1`;
      assert.deepEqual(rows.map((r) => [r.account_id, r.balance]), [["a", 380], ["b", 0]]);
    });
  });
});
