/**
 * Several projections in one process with `runMultipleProjections`: each
 * has its own name (so its own checkpoints), its own scope (filtered in
 * SQL) and its own batch size, and each sees every event of its scope.
 *
 *     deno run -A examples/multiple_projections.ts
 *
 * @module
 */

import { jsonCodec, type TypedEvent } from "../src/es/mod.ts";
import { type Projection, typedProjection } from "../src/projection/mod.ts";
import { runMultipleProjections } from "../src/runner/mod.ts";
import { openExampleDb } from "./_db.ts";

/** The users' and the orders' events, typed, and their codecs. */
type UserEvent = TypedEvent<"UserRegistered", { name: string }>;
type OrderEvent =
  | TypedEvent<"OrderPlaced", { customer: string; cents: number }>
  | TypedEvent<"OrderShipped", Record<string, never>>;
const users = jsonCodec<UserEvent>({ events: { UserRegistered: {} } });
const orders = jsonCodec<OrderEvent>({ events: { OrderPlaced: {}, OrderShipped: {} } });

const db = await openExampleDb();
const { sql, store } = db;
await sql`create table user_count (n int not null)`;
await sql`insert into user_count values (0)`;
await sql`create table revenue (customer text primary key, cents bigint not null)`;
await sql`create table activity (position bigint primary key, line text not null)`;

// Users register, then place orders.
for (let u = 1; u <= 5; u++) {
  await store.append(sql, [{
    aggregateType: "User",
    aggregateId: `user-${u}`,
    ...users.encode({ type: "UserRegistered", data: { name: `User ${u}` } }),
  }], { expectedVersion: "no_stream" });
  for (let o = 1; o <= u; o++) {
    await store.append(sql, [
      {
        aggregateType: "Order",
        aggregateId: `order-${u}-${o}`,
        ...orders.encode({
          type: "OrderPlaced",
          data: { customer: `user-${u}`, cents: 1000 * o },
        }),
      },
      {
        aggregateType: "Order",
        aggregateId: `order-${u}-${o}`,
        ...orders.encode({ type: "OrderShipped", data: {} }),
      },
    ], { expectedVersion: "no_stream" });
  }
}
const [{ count: totalEvents }] = await sql`select count(*)::int as count from events`;
console.log(`appended ${totalEvents} events: 5 users, 15 orders (placed and shipped)`);

// The typed projections' scopes are their handlers' event types; the
// untyped one, with no scope, sees every event.
const userCount = typedProjection<UserEvent>({
  name: "user_count",
  codec: users,
  handlers: {
    async UserRegistered(_event, tx) {
      await tx`update user_count set n = n + 1`;
    },
  },
});
const revenue = typedProjection<OrderEvent>({
  name: "revenue",
  codec: orders,
  aggregateTypes: ["Order"],
  handlers: {
    async OrderPlaced({ data: { customer, cents } }, tx) {
      await tx`insert into revenue (customer, cents) values (${customer}, ${cents})
        on conflict (customer) do update set cents = revenue.cents + excluded.cents`;
    },
  },
});
const activity: Projection = {
  name: "activity",
  async handle(event, tx) {
    await tx`insert into activity (position, line) values (
      ${String(event.globalPosition)}, ${`${event.eventType} ${event.aggregateId}`})`;
  },
};

await runMultipleProjections(sql, store, [
  { projection: userCount, config: { batchSize: 1000 } },
  { projection: revenue, config: { batchSize: 50 } },
  { projection: activity, config: { batchSize: 10 } },
], { mode: "until_caught_up" });

const [{ n }] = await sql`select n from user_count`;
const rows = await sql`select customer, cents::int as cents from revenue order by customer`;
const [{ lines }] = await sql`select count(*)::int as lines from activity`;
console.log(`user_count: ${n} users`);
console.log(`revenue: ${rows.map((r) => `${r.customer} ${r.cents / 100} EUR`).join(", ")}`);
console.log(`activity: ${lines} lines (every event)`);
const expectedRevenue = [1, 2, 3, 4, 5].map((u) => 1000 * (u * (u + 1)) / 2);
if (
  n !== 5 || lines !== totalEvents ||
  JSON.stringify(rows.map((r) => r.cents)) !== JSON.stringify(expectedRevenue)
) {
  throw new Error("a projection missed or repeated an event");
}
await db.close();
console.log("multiple_projections: done");
