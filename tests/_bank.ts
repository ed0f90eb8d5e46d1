/**
 * A small account domain for the typed layer's tests: typed events, a
 * codec, `evolve` and the deciders.
 *
 * @module
 */

import { jsonCodec, type TypedEvent } from "../src/es/mod.ts";

export type AccountEvent =
  | TypedEvent<"Opened", { owner: string }>
  | TypedEvent<"Deposited", { amount: bigint }>
  | TypedEvent<"Withdrawn", { amount: bigint }>;

export interface Account {
  open: boolean;
  balance: bigint;
  /** How many events were folded, to tell a snapshot's state from a replay's. */
  events: number;
}

export const codec = jsonCodec<AccountEvent>({
  events: { Opened: {}, Deposited: {}, Withdrawn: {} },
});

export const initialState = (): Account => ({ open: false, balance: 0n, events: 0 });

export function evolve(state: Account, event: AccountEvent): Account {
  const events = state.events + 1;
  switch (event.type) {
    case "Opened":
      return { ...state, open: true, events };
    case "Deposited":
      return { ...state, balance: state.balance + event.data.amount, events };
    case "Withdrawn":
      return { ...state, balance: state.balance - event.data.amount, events };
  }
}

export class InsufficientFunds extends Error {}

export const open = (owner: string) => (state: Account): AccountEvent[] => {
  if (state.open) throw new Error("already open");
  return [{ type: "Opened", data: { owner } }];
};

export const deposit = (amount: bigint) => (state: Account): AccountEvent[] => {
  if (!state.open) throw new Error("not open");
  return [{ type: "Deposited", data: { amount } }];
};

export const withdraw = (amount: bigint) => (state: Account): AccountEvent[] => {
  if (state.balance < amount) throw new InsufficientFunds(`balance ${state.balance} < ${amount}`);
  return [{ type: "Withdrawn", data: { amount } }];
};

export const options = { initialState, evolve, codec };
