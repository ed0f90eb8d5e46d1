/**
 * The PostgreSQL adapter: {@linkcode PostgresStore} on postgres.js, and
 * {@linkcode migrate}, which creates and upgrades its tables.
 *
 * @example
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing/postgres";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore({ schema: "es" });
 * const stream = await store.readAggregateStream(sql, "User", "user-1");
 * ```
 *
 * @module
 */

export {
  type AppendOptions,
  type CoalesceOptions,
  DEFAULT_NOTIFY_CHANNEL,
  PostgresStore,
  type PostgresStoreConfig,
  type ReadEventsOptions,
  type ReadStreamOptions,
} from "./store.ts";
export type { Db } from "./db.ts";
export { PostgresSnapshotStore } from "./snapshots.ts";
export { type AppliedMigration, migrate, type MigrateOptions } from "./migrate.ts";
export { rebaseLog, type RebaseOptions, type RebaseResult } from "./rebase.ts";
export type { HorizonBlocker, HorizonReport } from "./horizon.ts";
export type { ResolvedTables, TableNames } from "./tables.ts";
