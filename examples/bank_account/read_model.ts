/**
 * The read model: one row per account with its owner, balance and status,
 * kept by a typed projection. Each handler gets its event decoded and
 * typed; the projection reads only the event types it has handlers for.
 *
 * Amounts are sent as text and cast (`${String(cents)}::bigint`): a
 * default `postgres()` client's types refuse a bigint parameter (see
 * docs/aggregates.md, "bigint parameters").
 *
 * @module
 */

import { typedProjection } from "../../mod.ts";
import { accountCodec, type AccountEvent } from "./domain.ts";

export const accountBalances = typedProjection<AccountEvent>({
  name: "account_balances",
  codec: accountCodec,
  aggregateTypes: ["Account"],
  async init(tx) {
    await tx`
      create table if not exists account_balances (
        account_id text primary key,
        owner text not null,
        balance bigint not null default 0,
        closed boolean not null default false
      )`;
  },
  handlers: {
    async AccountOpened(event, tx, { aggregateId }) {
      await tx`insert into account_balances (account_id, owner)
        values (${aggregateId}, ${event.data.owner})`;
    },
    async MoneyDeposited(event, tx, { aggregateId }) {
      await tx`update account_balances set balance = balance + ${String(event.data.cents)}::bigint
        where account_id = ${aggregateId}`;
    },
    async MoneyWithdrawn(event, tx, { aggregateId }) {
      await tx`update account_balances set balance = balance - ${String(event.data.cents)}::bigint
        where account_id = ${aggregateId}`;
    },
    async AccountClosed(_event, tx, { aggregateId }) {
      await tx`update account_balances set closed = true where account_id = ${aggregateId}`;
    },
  },
});
