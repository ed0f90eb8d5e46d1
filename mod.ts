/**
 * pupsourcing: event sourcing on PostgreSQL for Deno, Node and Bun. An
 * event store that never loses, duplicates or reorders an event, and
 * projections that keep read models exactly in step with it.
 *
 * @example Append and read back
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore();
 * await store.append(sql, [{
 *   aggregateType: "User",
 *   aggregateId: "user-1",
 *   eventType: "UserRegistered",
 *   payload: new TextEncoder().encode('{"email":"a@b.c"}'),
 * }], { expectedVersion: "no_stream" });
 * const { events, version } = await store.readAggregateStream(sql, "User", "user-1");
 * ```
 *
 * @module
 */

export * from "./src/es/mod.ts";
export * from "./src/postgres/mod.ts";
export * from "./src/projection/mod.ts";
export * from "./src/runner/mod.ts";
