/**
 * A worker pool: every partition of one projection in one process, with
 * `runProjectionPartitions`. Each worker owns a share of the segments, so
 * the workers never handle the same aggregate; the run ends when all have
 * caught up (or, in a service, when its signal aborts).
 *
 *     deno run -A examples/worker_pool.ts              # 4 workers
 *     deno run -A examples/worker_pool.ts --workers 8
 *
 * @module
 */

import { parseArgs } from "node:util";
import { jsonCodec, segmentOf, type TypedEvent } from "../mod.ts";
import { typedProjection } from "../src/projection/mod.ts";
import { runProjectionPartitions } from "../src/runner/mod.ts";
import { openExampleDb } from "./_db.ts";

/** An account's event, typed, and its codec. */
type AccountEvent = TypedEvent<"Deposited", { amount: number }>;
const codec = jsonCodec<AccountEvent>({ events: { Deposited: {} } });

const { values: flags } = parseArgs({
  options: { workers: { type: "string", default: "4" } },
});
const workers = Number(flags.workers);

const db = await openExampleDb();
const { sql, store } = db;
await sql`create table balances (account text primary key, balance bigint not null)`;

// 40 accounts, 5 deposits each.
let expectedTotal = 0;
for (let round = 1; round <= 5; round++) {
  for (let i = 0; i < 40; i++) {
    const amount = round * 10 + i;
    expectedTotal += amount;
    await store.append(sql, [{
      aggregateType: "Account",
      aggregateId: `account-${i}`,
      ...codec.encode({ type: "Deposited", data: { amount } }),
    }]);
  }
}
console.log(`appended 200 deposits to 40 accounts`);

const handledBySegment = new Map<number, number>();
const balances = typedProjection<AccountEvent>({
  name: "balances",
  codec,
  aggregateTypes: ["Account"],
  handlers: {
    async Deposited({ data: { amount } }, tx, { aggregateId }) {
      await tx`insert into balances (account, balance) values (${aggregateId}, ${amount})
        on conflict (account) do update set balance = balances.balance + excluded.balance`;
      const segment = segmentOf(aggregateId, 16);
      handledBySegment.set(segment, (handledBySegment.get(segment) ?? 0) + 1);
    },
  },
});

// Each worker holds a pooled connection while it processes a batch: the
// default pool of 10 serves up to 10 workers without waiting.
await runProjectionPartitions(sql, store, balances, workers, {
  mode: "until_caught_up",
  config: { batchSize: 20 },
});

const checkpoints = await sql`
  select segment, global_position from projection_checkpoints
  where projection_name = 'balances' order by segment`;
console.log(
  `${workers} workers caught up; checkpoints per segment (segment s is worker s % ${workers}'s):`,
);
for (const row of checkpoints) {
  const segment = row.segment as number;
  console.log(
    `  segment ${String(segment).padStart(2)} (worker ${segment % workers}): ` +
      `${handledBySegment.get(segment) ?? 0} events, checkpoint at position ${row.global_position}`,
  );
}
const [{ total, accounts }] = await sql`
  select sum(balance)::int as total, count(*)::int as accounts from balances`;
console.log(`check: ${accounts} accounts, total balance ${total}, expected ${expectedTotal}`);
if (total !== expectedTotal || accounts !== 40) throw new Error("balances do not add up");
await db.close();
console.log("worker_pool: done");
