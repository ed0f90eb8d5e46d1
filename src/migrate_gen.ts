/**
 * Writes the SQL schema of pupsourcing (the events table, the aggregate
 * heads and the projection checkpoints) as numbered files, one per schema
 * version: `0001_event_store.sql`, then one more for each later schema
 * change. Every table name is configurable, validated and quoted, and every
 * file is idempotent, so applying one twice changes nothing.
 *
 * For your own migration tool (or `psql -f`). To apply the schema directly,
 * use `migrate` (`@getpup/pupsourcing/migrate`, or `migrate()` from code),
 * which also records the versions it applied.
 *
 * Run it as a command:
 *
 * ```sh
 * deno run -A jsr:@getpup/pupsourcing/migrate-gen --output migrations
 * ```
 *
 * @example The files, from code
 * ```ts
 * import { generateMigrationFiles } from "@getpup/pupsourcing/migrate-gen";
 *
 * for (const file of generateMigrationFiles({ schema: "es" })) console.log(file.name);
 * // 0001_event_store.sql
 * ```
 *
 * @module
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  TABLE_FLAGS,
  TABLE_FLAGS_USAGE,
  tableNames,
  UsageError,
  usageErrors,
} from "./cli_flags.ts";
import { PupsourcingError } from "./es/errors.ts";
import { migrationId, MIGRATIONS } from "./postgres/migrations.ts";
import { resolveTables, type TableNames } from "./postgres/tables.ts";

/**
 * What {@linkcode generateMigrationFiles} generates: the table names, and
 * optionally a schema. (`migrationsTable` matters to `migrate` only: the
 * files do not record what was applied; your migration tool does.)
 *
 * @example
 * ```ts
 * import type { MigrationConfig } from "@getpup/pupsourcing/migrate-gen";
 *
 * const config: MigrationConfig = { eventsTable: "billing_events" };
 * ```
 */
export type MigrationConfig = TableNames;

/**
 * One file of {@linkcode generateMigrationFiles}: a schema version.
 *
 * @example
 * ```ts
 * import type { MigrationFile } from "@getpup/pupsourcing/migrate-gen";
 *
 * const file: MigrationFile = { name: "0001_event_store.sql", sql: "CREATE TABLE ..." };
 * ```
 */
export interface MigrationFile {
  /** `0001_event_store.sql`: the version, zero-padded so files sort, and a name. */
  name: string;
  /** The version's idempotent SQL. */
  sql: string;
}

/**
 * Returns one file per schema version, oldest first: the SQL that creates
 * (if missing) or upgrades every table the library uses.
 *
 * @throws {ValidationError} when a name is not a plain identifier.
 *
 * @example
 * ```ts
 * import { generateMigrationFiles } from "@getpup/pupsourcing/migrate-gen";
 *
 * const [first] = generateMigrationFiles({ eventsTable: "events" });
 * console.log(first.name); // 0001_event_store.sql
 * console.log(first.sql.includes('CREATE TABLE IF NOT EXISTS "events"')); // true
 * ```
 */
export function generateMigrationFiles(config: MigrationConfig = {}): MigrationFile[] {
  const tables = resolveTables(config);
  return MIGRATIONS.map((migration) => ({
    name: `${migrationId(migration)}.sql`,
    sql: `-- pupsourcing schema version ${migration.version}: ${migration.name} ` +
      `(PostgreSQL 13 or newer; idempotent)\n${migration.sql(tables)}`,
  }));
}

/**
 * Returns the SQL of every schema version, the files of
 * {@linkcode generateMigrationFiles} in order, as one text.
 *
 * @throws {ValidationError} when a name is not a plain identifier.
 *
 * @example
 * ```ts
 * import { generateMigration } from "@getpup/pupsourcing/migrate-gen";
 *
 * const text = generateMigration({ eventsTable: "events" });
 * console.log(text.includes('CREATE TABLE IF NOT EXISTS "events"')); // true
 * ```
 */
export function generateMigration(config: MigrationConfig = {}): string {
  return generateMigrationFiles(config).map((file) => file.sql).join("\n");
}

const USAGE = `Usage: pupsourcing migrate-gen [options]

Writes the pupsourcing PostgreSQL schema as numbered SQL files, one per
schema version (0001_event_store.sql, ...), each idempotent. Files already
in the folder are kept: only missing versions are written, and a file that
differs from what these options generate stops it (exit 1, nothing written).

Options:
  --output <dir>                 folder to write to (default: migrations)
  --json                         print one JSON object instead of text
${TABLE_FLAGS_USAGE}  -h, --help                     show this help
`;

/** A file already in the folder that is not what would be written. */
class FileConflict extends Error {}

/**
 * Runs the CLI with `args` (without the program name) and returns the exit
 * code: 0 on success, 2 on bad flags or names, 1 when a file cannot be
 * written or an existing one differs. Messages go to stdout and stderr.
 *
 * @example
 * ```ts ignore
 * import { migrateGenMain } from "@getpup/pupsourcing/migrate-gen";
 *
 * const code = await migrateGenMain(["--output", "migrations"]);
 * ```
 */
export async function migrateGenMain(args: string[]): Promise<number> {
  let files: MigrationFile[];
  let output: string;
  let json: boolean;
  try {
    const flags = usageErrors(() =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: false,
        options: {
          output: { type: "string", default: "migrations" },
          json: { type: "boolean", default: false },
          ...TABLE_FLAGS,
          help: { type: "boolean", short: "h" },
        },
      }).values
    );
    if (flags.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (flags.output === "") throw new UsageError("--output must not be empty");
    output = flags.output;
    json = flags.json;
    files = generateMigrationFiles(tableNames(flags));
  } catch (error) {
    if (!(error instanceof PupsourcingError)) throw error;
    process.stderr.write(`migrate-gen: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  let path = output;
  try {
    const missing: MigrationFile[] = [];
    for (const file of files) {
      path = join(output, file.name);
      const existing = await readFile(path, "utf8").catch((error) => {
        if (error.code === "ENOENT") return undefined;
        throw error;
      });
      if (existing === undefined) missing.push(file);
      else if (existing !== file.sql) {
        throw new FileConflict(
          `${path} differs from what these options generate (edited, or made with other ` +
            "table names); nothing written. Pass the options the folder was made with, " +
            "or write to another --output",
        );
      }
    }
    await mkdir(output, { recursive: true });
    const written: string[] = [];
    for (const file of missing) {
      path = join(output, file.name);
      await writeFile(path, file.sql, { flag: "wx" });
      written.push(path);
      if (!json) process.stdout.write(`Generated PostgreSQL migration: ${path}\n`);
    }
    if (json) process.stdout.write(JSON.stringify({ output, written }) + "\n");
    else if (missing.length === 0) {
      process.stdout.write(`Nothing to write: every version is already in ${output}\n`);
    }
  } catch (error) {
    const reason = error instanceof FileConflict
      ? error.message
      : `cannot write ${path}: ${(error as Error).message}`;
    process.stderr.write(`migrate-gen: ${reason}\n`);
    return 1;
  }
  return 0;
}

if ((import.meta as { main?: boolean }).main) {
  process.exitCode = await migrateGenMain(process.argv.slice(2));
}
