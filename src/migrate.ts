/**
 * The `migrate` command: applies the pupsourcing schema's pending versions
 * to a database, each in its own transaction, and records them (see
 * `migrate()` in `@getpup/pupsourcing/postgres`). Concurrent runs are safe:
 * one applies, the others wait and find nothing left to do.
 *
 * ```sh
 * deno run -A jsr:@getpup/pupsourcing/migrate --database-url postgres://localhost/app
 * DATABASE_URL=postgres://localhost/app deno task migrate --dry-run
 * ```
 *
 * After moving the database into a new cluster (a dump and restore, a
 * logical replication move), `--rebase` also rebases the log (see
 * `rebaseLog()`), once the schema is up to date:
 *
 * ```sh
 * DATABASE_URL=postgres://new-host/app deno task migrate --rebase
 * ```
 *
 * @example Run it from a deploy script
 * ```ts ignore
 * import { migrateMain } from "@getpup/pupsourcing/migrate";
 *
 * const code = await migrateMain(["--schema", "es"]); // DATABASE_URL from the environment
 * if (code !== 0) throw new Error(`migrate exited with ${code}`);
 * ```
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";
import { parseArgs } from "node:util";
import {
  databaseFailure,
  type DatabaseUrl,
  databaseUrl,
  TABLE_FLAGS,
  TABLE_FLAGS_USAGE,
  tableNames,
  UsageError,
  usageErrors,
} from "./cli_flags.ts";
import { PupsourcingError, TransactionIdRegressionError } from "./es/errors.ts";
import { START } from "./es/event.ts";
import { migrate } from "./postgres/migrate.ts";
import { migrationId } from "./postgres/migrations.ts";
import { rebaseLog } from "./postgres/rebase.ts";
import { PostgresStore } from "./postgres/store.ts";

const USAGE = `Usage: pupsourcing migrate [options]

Applies the pupsourcing schema's pending versions to a PostgreSQL database,
each in its own transaction, and records them in the migrations table.
Concurrent runs are safe: one applies, the others wait and find nothing to do.
Exits 1 when the log needs --rebase (the database was moved into a new
cluster): every append and read would refuse it until then.

Options:
  --database-url <url>           the database (default: the DATABASE_URL variable)
  --dry-run                      print the pending SQL and change nothing
  --rebase                       then rebase the log after a move into a new
                                 cluster (a no-op when it needs none)
  --json                         print one JSON object instead of text
${TABLE_FLAGS_USAGE}  --migrations-table <name>      default: pupsourcing_migrations
  -h, --help                     show this help
`;

/**
 * Runs the command with `args` (without the program name) and returns the
 * exit code: 0 on success, 2 on bad flags, names or a missing database URL,
 * 1 when the database cannot be reached or migrated, or when the log
 * needs `--rebase` after a move into a new cluster (with a one-line
 * reason). `env` supplies `DATABASE_URL` when `--database-url` is not given.
 *
 * @example
 * ```ts ignore
 * import { migrateMain } from "@getpup/pupsourcing/migrate";
 *
 * const code = await migrateMain(["--database-url", "postgres://localhost/app", "--dry-run"]);
 * ```
 */
export async function migrateMain(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let database: DatabaseUrl;
  let store: PostgresStore;
  let dryRun: boolean;
  let rebase: boolean;
  let json: boolean;
  try {
    const flags = usageErrors(() =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: false,
        options: {
          "database-url": { type: "string" },
          "dry-run": { type: "boolean", default: false },
          rebase: { type: "boolean", default: false },
          json: { type: "boolean", default: false },
          ...TABLE_FLAGS,
          "migrations-table": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
      }).values
    );
    if (flags.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    database = databaseUrl(flags["database-url"], env);
    store = new PostgresStore({
      ...tableNames(flags),
      migrationsTable: flags["migrations-table"],
      notifyChannel: false,
    });
    dryRun = flags["dry-run"];
    rebase = flags.rebase;
    json = flags.json;
    if (dryRun && rebase) throw new UsageError("--rebase cannot be combined with --dry-run");
  } catch (error) {
    if (!(error instanceof PupsourcingError)) throw error;
    process.stderr.write(`migrate: ${error.message}\n\n${USAGE}`);
    return 2;
  }

  const sql = postgres(database.url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const migrations = await migrate(sql, { store, dryRun });
    // A database moved into a new cluster has its schema, and a log every
    // append and read refuses until it is rebased: say so here, at deploy.
    const unrebased = dryRun || rebase ? undefined : await regression(sql, store);
    if (json) {
      const rebased = rebase ? await rebaseLog(sql, { store }) : undefined;
      process.stdout.write(
        JSON.stringify(
          {
            [dryRun ? "pending" : "applied"]: migrations.map((m) =>
              dryRun ? { id: migrationId(m), sql: m.sql } : migrationId(m)
            ),
            ...(rebased ? { rebase: rebased } : {}),
            ...(unrebased ? { rebaseNeeded: unrebased.message } : {}),
          },
          (_key, value) => typeof value === "bigint" ? String(value) : value,
        ) + "\n",
      );
      return unrebased ? needsRebase(unrebased) : 0;
    }
    if (dryRun) {
      for (const m of migrations) process.stdout.write(`-- ${migrationId(m)}\n${m.sql}\n`);
      if (migrations.length === 0) process.stdout.write("-- Nothing to apply.\n");
    } else {
      for (const m of migrations) process.stdout.write(`Applied ${migrationId(m)}\n`);
      process.stdout.write(
        migrations.length === 0
          ? "Nothing to apply: the schema is up to date.\n"
          : "The schema is up to date.\n",
      );
    }
    if (rebase) {
      const result = await rebaseLog(sql, { store });
      process.stdout.write(
        result.rebased
          ? `Rebased the log: new events follow transaction id ${result.newestTransactionId} ` +
            `(ordering offset ${result.previousOffset} -> ${result.offset}).\n`
          : `The log needs no rebase (ordering offset ${result.offset}).\n`,
      );
      if (result.positionAdvancedTo !== null) {
        process.stdout.write(
          `Moved the events' position sequence up to ${result.positionAdvancedTo}.\n`,
        );
      }
    }
    return unrebased ? needsRebase(unrebased) : 0;
  } catch (error) {
    process.stderr.write(`migrate: ${databaseFailure("cannot migrate", error, database)}\n`);
    return 1;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if ((import.meta as { main?: boolean }).main) {
  process.exitCode = await migrateMain(process.argv.slice(2));
}

/** The regression the store's guard would refuse every statement with, if any. */
async function regression(
  sql: postgres.Sql,
  store: PostgresStore,
): Promise<TransactionIdRegressionError | undefined> {
  try {
    await store.assertCursorInCluster(sql, START);
    return undefined;
  } catch (error) {
    if (error instanceof TransactionIdRegressionError) return error;
    throw error;
  }
}

/** Reports a log that needs `--rebase`; the exit code. */
function needsRebase(error: TransactionIdRegressionError): number {
  process.stderr.write(
    `migrate: the schema is up to date, but the log needs a rebase. ${error.message}\n`,
  );
  return 1;
}
