/**
 * A small bank: accounts as deciders, commands handled with retries and
 * idempotency, snapshots, and a typed projection into a read model.
 *
 * 1. Opens three accounts, one of them with a deposit stored by an older
 *    version of the code (version 1 of `MoneyDeposited`, upcast on read).
 * 2. Eight tellers deposit into one account at once: the conflicts are
 *    retried, every deposit lands once.
 * 3. A withdrawal whose response is "lost" is sent again with the same
 *    command id: the second call gets the first one's result.
 * 4. A refused command (an overdraft) appends nothing.
 * 5. The read model catches up and is checked against the streams.
 *
 *     deno run -A examples/bank_account/main.ts
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  aggregateStream,
  DeciderError,
  handleCommand,
  PostgresSnapshotStore,
  ProjectionProcessor,
  type StreamName,
} from "../../mod.ts";
import { json, openExampleDb } from "../_db.ts";
import { accountDecider, AccountRuleError, deposit, open, withdraw } from "./domain.ts";
import { accountBalances } from "./read_model.ts";

const db = await openExampleDb({ notifyChannel: false });
const { sql, store } = db;
const account = (id: string): StreamName => ({ aggregateType: "Account", aggregateId: id });
// A snapshot every 10 events, in the transaction of the append that crosses it.
const options = {
  ...accountDecider,
  snapshots: { store: new PostgresSnapshotStore(store), every: 10, version: 1 },
};
// Up to 20 re-reads after a conflict: eight tellers on one account below.
const command = { ...options, retries: 20 };

try {
  // 1. Three accounts; acc-3 got a deposit from the old code, in euros.
  for (const [id, owner] of [["acc-1", "ann"], ["acc-2", "bob"], ["acc-3", "cy"]]) {
    await handleCommand(store, sql, account(id), open(owner), command);
  }
  await store.append(sql, [{
    ...account("acc-3"),
    eventType: "MoneyDeposited",
    eventVersion: 1,
    payload: json({ amount: 12 }),
  }]);
  const old = await aggregateStream(store, sql, account("acc-3"), options);
  console.log(`acc-3 after a version-1 deposit of 12 euros: ${old.state.balance} cents`);
  assert.equal(old.state.balance, 1200n);

  // 2. Eight tellers, one account, at once.
  let decisions = 0;
  const amounts = [100n, 200n, 300n, 400n, 500n, 600n, 700n, 800n];
  await Promise.all(
    amounts.map((cents, i) =>
      handleCommand(store, sql, account("acc-1"), (state: typeof old.state) => {
        decisions++;
        return deposit(cents)(state);
      }, { ...command, commandId: `teller-${i}` })
    ),
  );
  const acc1 = await aggregateStream(store, sql, account("acc-1"), options);
  console.log(
    `acc-1 after 8 concurrent deposits: ${acc1.state.balance} cents at version ${acc1.version} ` +
      `(${decisions} decisions: ${decisions - amounts.length} retried after a conflict)`,
  );
  assert.equal(acc1.state.balance, 3600n);
  assert.equal(acc1.version, 9n);

  // 3. The same withdrawal twice, as a client whose first response was lost would.
  const first = await handleCommand(store, sql, account("acc-1"), withdraw(3000n), {
    ...command,
    commandId: "atm-42",
  });
  const again = await handleCommand(store, sql, account("acc-1"), withdraw(3000n), {
    ...command,
    commandId: "atm-42",
  });
  console.log(
    `withdrawal atm-42 sent twice: versions ${first.version} and ${again.version}, ` +
      `same events: ${
        first.appendResult!.events[0].eventId === again.appendResult!.events[0].eventId
      }`,
  );
  assert.equal(again.version, first.version);
  assert.equal(again.newState.balance, 600n);

  // 4. An overdraft is refused, and nothing is appended.
  await assert.rejects(
    handleCommand(store, sql, account("acc-2"), withdraw(1n), command),
    (error: unknown) => error instanceof DeciderError && error.cause instanceof AccountRuleError,
  );
  console.log("acc-2 overdraft refused: nothing appended");

  // 5. The read model.
  await sql.begin((tx) => accountBalances.init(tx));
  await new ProjectionProcessor(sql, store).run(accountBalances, { mode: "until_caught_up" });
  const rows = await sql`
    select account_id, owner, balance::text from account_balances order by account_id`;
  for (const row of rows) console.log(`  ${row.account_id} ${row.owner.padEnd(4)} ${row.balance}`);
  for (const row of rows) {
    const { state } = await aggregateStream(store, sql, account(row.account_id), options);
    assert.equal(BigInt(row.balance), state.balance);
  }
  const [snapshot] = await sql`select aggregate_id, aggregate_version::int from snapshots`;
  console.log(`snapshot: ${snapshot.aggregate_id} at version ${snapshot.aggregate_version}`);
  assert.deepEqual({ ...snapshot }, { aggregate_id: "acc-1", aggregate_version: 10 });
  console.log("bank_account: every check passed");
} finally {
  await db.close();
}
