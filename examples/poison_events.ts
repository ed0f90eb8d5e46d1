/**
 * A poison event, parked instead of stopping the projection. The balance
 * handler has a bug: it cannot read one deposit's amount. With `onError:
 * { retries: 2, then: "park" }` it retries that event, parks it, parks
 * the account's later events behind it (so the balance never sees them
 * out of order) and keeps every other account up to date. After the fix,
 * `replayParked` applies the parked events in order, exactly once.
 *
 *     deno run -A examples/poison_events.ts
 *
 * @module
 */

import {
  listParked,
  type Projection,
  ProjectionProcessor,
  replayParked,
} from "../src/projection/mod.ts";
import { json, openExampleDb } from "./_db.ts";

const db = await openExampleDb();
const { store, sql } = db;
try {
  await sql`create table balances (account text primary key, balance numeric not null, version bigint not null)`;
  const deposits: [string, unknown][] = [
    ["acc-1", 10],
    ["acc-2", 5],
    ["acc-1", "twenty"], // the poison: the amount is not a number
    ["acc-2", 7],
    ["acc-1", 30], // held behind the poison: acc-1's order is kept
    ["acc-3", 1],
  ];
  for (const [account, amount] of deposits) {
    await store.append(sql, [{
      aggregateType: "Account",
      aggregateId: account,
      eventType: "Deposited",
      payload: json({ amount }),
    }]);
  }

  const balances = (parse: (amount: unknown) => number): Projection => {
    return {
      name: "balances",
      onError: { retries: 2, backoff: { initialMs: 10, maxMs: 100 }, then: "park" },
      async handle(event, tx) {
        const { amount } = JSON.parse(new TextDecoder().decode(event.payload));
        const value = parse(amount);
        await tx`
          insert into balances (account, balance, version)
          values (${event.aggregateId}, ${value}, ${String(event.aggregateVersion)})
          on conflict (account) do update
            set balance = balances.balance + excluded.balance, version = excluded.version`;
      },
    };
  };
  const buggy = balances((amount) => {
    if (typeof amount !== "number") throw new TypeError(`not an amount: ${JSON.stringify(amount)}`);
    return amount;
  });
  const words: Record<string, number> = { twenty: 20 };
  const fixed = balances((amount) => typeof amount === "number" ? amount : words[String(amount)]);

  const show = async (title: string) => {
    const rows = await sql`select account, balance, version from balances order by account`;
    console.log(title);
    for (const row of rows) {
      console.log(`  ${row.account}: ${row.balance} (version ${row.version})`);
    }
  };

  const outcome = await new ProjectionProcessor(sql, store).run(buggy, { mode: "until_caught_up" });
  console.log(
    `run: ${outcome.processed} applied, ${outcome.retried} retries, ${outcome.parked} parked`,
  );
  await show("balances with the bug:");
  const parked = await listParked(sql, store, { projection: "balances" });
  for (const p of parked) {
    console.log(
      `  parked ${p.event.aggregateId} v${p.event.aggregateVersion} (${p.reason}, ` +
        `${p.attempts} attempts)${p.error ? `: ${p.error}` : ""}`,
    );
  }

  const replayed = await replayParked(sql, store, fixed);
  console.log(`replay: ${replayed.resolved} resolved, ${replayed.failed} failed again`);
  await show("balances after the fix:");

  const [acc1] = await sql`select balance::int as balance, version::int as version
    from balances where account = 'acc-1'`;
  if (parked.length !== 2 || replayed.resolved !== 2 || acc1.balance !== 60 || acc1.version !== 3) {
    throw new Error(
      `unexpected result: ${JSON.stringify({ parked: parked.length, replayed, acc1 })}`,
    );
  }
} finally {
  await db.close();
}
