/**
 * The bank account's domain as a decider: typed events and their codec,
 * the state and how each event changes it, and one function per command
 * that decides the new events from the state (or refuses).
 *
 * Nothing here touches a database: the deciders are tested with
 * `deciderSpec` on the in-memory store (domain_test.ts).
 *
 * @module
 */

import { jsonCodec, type TypedEvent } from "../../mod.ts";

/** What can happen to an account. Amounts are bigint cents. */
export type AccountEvent =
  | TypedEvent<"AccountOpened", { owner: string }>
  | TypedEvent<"MoneyDeposited", { cents: bigint }>
  | TypedEvent<"MoneyWithdrawn", { cents: bigint }>
  | TypedEvent<"AccountClosed", null>;

/**
 * The codec. `MoneyDeposited` is at version 2: version 1 stored whole
 * euros as `{ amount: number }`, and the upcaster turns those into cents
 * when they are read.
 */
export const accountCodec = jsonCodec<AccountEvent>({
  events: {
    AccountOpened: {},
    MoneyDeposited: {
      version: 2,
      upcast: { 1: ({ amount }: { amount: number }) => ({ cents: BigInt(amount) * 100n }) },
    },
    MoneyWithdrawn: {},
    AccountClosed: {},
  },
});

/** What the deciders need to know about an account. */
export interface Account {
  status: "new" | "open" | "closed";
  owner: string;
  balance: bigint;
}

export const initialState = (): Account => ({ status: "new", owner: "", balance: 0n });

export function evolve(account: Account, event: AccountEvent): Account {
  switch (event.type) {
    case "AccountOpened":
      return { ...account, status: "open", owner: event.data.owner };
    case "MoneyDeposited":
      return { ...account, balance: account.balance + event.data.cents };
    case "MoneyWithdrawn":
      return { ...account, balance: account.balance - event.data.cents };
    case "AccountClosed":
      return { ...account, status: "closed" };
  }
}

/** A command the account's rules refuse. */
export class AccountRuleError extends Error {
  override name = "AccountRuleError";
}

function requireOpen(account: Account): void {
  if (account.status !== "open") throw new AccountRuleError(`the account is ${account.status}`);
}

function requirePositive(cents: bigint): void {
  if (cents <= 0n) throw new AccountRuleError(`amounts must be positive, got ${cents}`);
}

export const open = (owner: string) => (account: Account): AccountEvent[] => {
  if (account.status !== "new") throw new AccountRuleError("the account exists already");
  return [{ type: "AccountOpened", data: { owner } }];
};

export const deposit = (cents: bigint) => (account: Account): AccountEvent[] => {
  requireOpen(account);
  requirePositive(cents);
  return [{ type: "MoneyDeposited", data: { cents } }];
};

export const withdraw = (cents: bigint) => (account: Account): AccountEvent[] => {
  requireOpen(account);
  requirePositive(cents);
  if (account.balance < cents) {
    throw new AccountRuleError(`insufficient funds: ${account.balance} < ${cents}`);
  }
  return [{ type: "MoneyWithdrawn", data: { cents } }];
};

export const close = () => (account: Account): AccountEvent[] => {
  requireOpen(account);
  // Closing pays out what is left.
  const payout: AccountEvent[] = account.balance > 0n
    ? [{ type: "MoneyWithdrawn", data: { cents: account.balance } }]
    : [];
  return [...payout, { type: "AccountClosed", data: null }];
};

/** Everything `handleCommand` and `aggregateStream` need to rebuild an account. */
export const accountDecider = { initialState, evolve, codec: accountCodec };
