/**
 * Applies the schema's pending versions to a database and records them.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/validate.ts";
import { requireClient, table } from "./db.ts";
import { migrationId, MIGRATIONS } from "./migrations.ts";
import { migrationsTableSql } from "./schema.ts";
import { PostgresStore } from "./store.ts";
import { quote, type ResolvedTables } from "./tables.ts";

/**
 * Options of {@linkcode migrate}.
 *
 * @example See what would run, changing nothing
 * ```ts
 * import { PostgresStore, type MigrateOptions } from "@getpup/pupsourcing/postgres";
 *
 * const options: MigrateOptions = { store: new PostgresStore({ schema: "es" }), dryRun: true };
 * ```
 */
export interface MigrateOptions {
  /**
   * The store whose tables to create or upgrade: its table names (and
   * `migrationsTable`) and its logger are used. Default: `new
   * PostgresStore()`, the default names.
   */
  store?: PostgresStore;
  /** Only return the pending versions, with their SQL; change nothing. Default `false`. */
  dryRun?: boolean;
}

/**
 * A schema version that {@linkcode migrate} applied (or, with `dryRun`,
 * would apply).
 *
 * @example
 * ```ts
 * import type { AppliedMigration } from "@getpup/pupsourcing/postgres";
 *
 * const label = (m: AppliedMigration) => `${m.version} ${m.name}`;
 * ```
 */
export interface AppliedMigration {
  /** The version: 1, 2, 3, ... */
  version: number;
  /** Its name, as in its file `0001_<name>.sql`. */
  name: string;
  /** The SQL it ran (or would run) for the store's tables. */
  sql: string;
}

const OPTIONS = ["store", "dryRun"] as const;

/**
 * Brings the database's schema up to date: applies the versions it has not
 * recorded yet, in order, each in its own transaction, and records each in
 * the migrations table (`pupsourcing_migrations`, or the store's
 * `migrationsTable`). A transaction-scoped advisory lock serializes
 * concurrent calls: when two deploys race, one applies and the other waits,
 * then finds nothing left to do. Call it at every start-up: once the schema
 * is current it is one read, and it writes nothing.
 *
 * A database made by the single-file schema of earlier versions, or from
 * `migrate-gen` files applied by hand, upgrades in place: every version is
 * idempotent, so the ones already there change nothing and are recorded.
 * Versions a newer release recorded are left alone.
 *
 * @param sql A postgres.js client from `postgres(url)`, not the `tx` of
 * `sql.begin` nor a reserved connection: each version commits on its own.
 * @returns The versions applied, oldest first (empty when up to date); with
 * `dryRun`, the versions that would be.
 * @throws {ValidationError} on a bad client or option, before any SQL.
 *
 * @example Create or upgrade the schema at start-up
 * ```ts ignore
 * import postgres from "postgres";
 * import { migrate, PostgresStore } from "@getpup/pupsourcing";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore({ schema: "es" });
 * const applied = await migrate(sql, { store });
 * for (const m of applied) console.log(`applied version ${m.version} (${m.name})`);
 * ```
 *
 * @example Print the pending SQL
 * ```ts ignore
 * for (const m of await migrate(sql, { store, dryRun: true })) console.log(m.sql);
 * ```
 */
export async function migrate(
  // deno-lint-ignore no-explicit-any -- accepts clients configured with any custom type map
  sql: Sql<any>,
  options?: MigrateOptions,
): Promise<AppliedMigration[]> {
  const { store = new PostgresStore(), dryRun = false } = checkOptions(
    "options",
    options,
    OPTIONS,
  );
  requireClient("sql", sql, "each version runs in its own transaction");
  if (!(store instanceof PostgresStore)) {
    throw new ValidationError("options.store", "a PostgresStore", show(store));
  }
  if (typeof dryRun !== "boolean") {
    throw new ValidationError("options.dryRun", "true or false", show(dryRun));
  }
  const tables = store.tables;
  const recorded = await recordedVersions(sql, tables);
  const pending = MIGRATIONS.filter((m) => !recorded?.has(m.version))
    .map((m) => ({ version: m.version, name: m.name, sql: m.sql(tables) }));
  if (dryRun) return pending;

  const applied: AppliedMigration[] = [];
  let tableMissing = recorded === undefined;
  for (const migration of pending) {
    const ran = await sql.begin(async (tx) => {
      // IF NOT EXISTS reports each skip as a NOTICE, which a default
      // client prints: an upgrade in place would flood the console.
      await tx`set local client_min_messages = warning`;
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockName(tables)}, 0))`;
      if (tableMissing) await tx.unsafe(migrationsTableSql(tables));
      // Another caller may have applied it while this one waited.
      const [done] = await tx`
        select 1 from ${table(tx, tables.migrations)} where version = ${migration.version}`;
      if (done) return false;
      await tx.unsafe(migration.sql);
      await tx`
        insert into ${table(tx, tables.migrations)} (version, name)
        values (${migration.version}, ${migration.name})`;
      return true;
    });
    tableMissing = false;
    if (!ran) continue;
    applied.push(migration);
    store.logger?.info("applied schema version", {
      version: migration.version,
      migration: migrationId(migration),
    });
  }
  return applied;
}

/** The versions recorded, or `undefined` when there is no migrations table yet. */
async function recordedVersions(
  // deno-lint-ignore no-explicit-any -- any client
  sql: Sql<any>,
  tables: ResolvedTables,
): Promise<Set<number> | undefined> {
  const [{ found }] = await sql`
    select to_regclass(${quote(tables.migrations)}) is not null as found`;
  if (!found) return undefined;
  const rows = await sql`select version from ${table(sql, tables.migrations)}`;
  return new Set(rows.map((row) => Number(row.version)));
}

/**
 * The advisory lock's key text: one lock per migrations table, so stores in
 * different schemas of one database migrate independently.
 */
function lockName(tables: ResolvedTables): string {
  return `pupsourcing migrate ${tables.migrations}`;
}
