/**
 * Transfers between accounts with `appendMany`: the debit and the credit
 * are stored together or not at all, each account checked at the version
 * its balance was read at. Eight concurrent tellers move money between
 * five accounts; a teller whose accounts moved meanwhile gets an
 * `OptimisticConcurrencyError`, reloads and tries again. At the end no
 * money was made or lost and no account went below zero.
 *
 *     deno run -A examples/transfers.ts
 *
 * @module
 */

import { aggregateStream, jsonCodec, OptimisticConcurrencyError, type TypedEvent } from "../mod.ts";
import { openExampleDb } from "./_db.ts";

const db = await openExampleDb();
const { sql, store } = db;
const ACCOUNTS = ["acc-1", "acc-2", "acc-3", "acc-4", "acc-5"];
const OPENING = 100;

/** An account's events, typed, and their codec. */
type Movement =
  | TypedEvent<"Credited", { amount: number }>
  | TypedEvent<"Debited", { amount: number }>;
const codec = jsonCodec<Movement>({ events: { Credited: {}, Debited: {} } });

/** An account's balance and version, rebuilt from its stream. */
async function load(id: string): Promise<{ balance: number; version: bigint }> {
  const { state, version } = await aggregateStream(
    store,
    sql,
    { aggregateType: "Account", aggregateId: id },
    {
      initialState: () => 0,
      evolve: (balance, e: Movement) =>
        e.type === "Debited" ? balance - e.data.amount : balance + e.data.amount,
      codec,
    },
  );
  return { balance: state, version };
}

const movement = (id: string, type: Movement["type"], amount: number) => ({
  aggregateType: "Account",
  aggregateId: id,
  ...codec.encode({ type, data: { amount } }),
});

// Open every account in one statement: each must be new.
await store.appendMany(
  sql,
  ACCOUNTS.map((id) => ({
    events: [movement(id, "Credited", OPENING)],
    expectedVersion: "no_stream" as const,
  })),
);

let conflicts = 0;
let refusedForFunds = 0;

/** Moves `amount` from one account to another, retrying on conflicts. */
async function transfer(from: string, to: string, amount: number): Promise<void> {
  for (;;) {
    const [source, target] = await Promise.all([load(from), load(to)]);
    if (source.balance < amount) {
      refusedForFunds++;
      return;
    }
    try {
      await store.appendMany(sql, [
        { events: [movement(from, "Debited", amount)], expectedVersion: source.version },
        { events: [movement(to, "Credited", amount)], expectedVersion: target.version },
      ]);
      return;
    } catch (error) {
      if (!(error instanceof OptimisticConcurrencyError)) throw error;
      conflicts++; // someone moved one of the two accounts: reload and decide again
    }
  }
}

// Eight tellers, 25 transfers each, between random pairs of accounts.
const pick = () => ACCOUNTS[Math.floor(Math.random() * ACCOUNTS.length)];
await Promise.all(Array.from({ length: 8 }, async () => {
  for (let i = 0; i < 25; i++) {
    const from = pick();
    let to = pick();
    while (to === from) to = pick();
    await transfer(from, to, 1 + Math.floor(Math.random() * 40));
  }
}));

const balances = await Promise.all(ACCOUNTS.map(load));
const total = balances.reduce((sum, b) => sum + b.balance, 0);
for (const [i, { balance, version }] of balances.entries()) {
  console.log(`${ACCOUNTS[i]}: balance ${balance} at version ${version}`);
}
console.log(
  `200 transfers: ${conflicts} conflicts retried, ${refusedForFunds} refused for lack of funds`,
);
if (total !== OPENING * ACCOUNTS.length) {
  throw new Error(`money was made or lost: total ${total}`);
}
if (balances.some((b) => b.balance < 0)) throw new Error("an account went below zero");
console.log(`total still ${total}: every transfer was stored whole or not at all`);
await db.close();
console.log("transfers: done");
