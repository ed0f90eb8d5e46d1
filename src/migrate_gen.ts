/**
 * Generates the SQL schema of pupsourcing: the events table, the aggregate
 * heads and the projection checkpoints. Every table name is configurable,
 * validated and quoted, and every statement is idempotent, so the script can
 * be applied twice.
 *
 * Run it as a command:
 *
 * ```sh
 * deno run -A jsr:@getpup/pupsourcing/migrate-gen --output migrations
 * ```
 *
 * @example Apply the schema from code
 * ```ts ignore
 * import postgres from "postgres";
 * import { generateMigration } from "@getpup/pupsourcing/migrate-gen";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * await sql.unsafe(generateMigration({ schema: "es" }));
 * ```
 *
 * @module
 */

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { PupsourcingError } from "./es/errors.ts";
import { initialSchemaSql } from "./postgres/schema.ts";
import { resolveTables, type TableNames } from "./postgres/tables.ts";

/**
 * What {@linkcode generateMigration} generates: the table names, and
 * optionally a schema.
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
 * Returns the SQL that creates (if missing) every table the library uses.
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
  return `-- pupsourcing event store schema (PostgreSQL 13 or newer)\n${
    initialSchemaSql(resolveTables(config))
  }`;
}

/** A bad command line: the CLI prints it with the usage and exits 2. */
class UsageError extends PupsourcingError {}

const USAGE = `Usage: migrate-gen [options]

Writes the pupsourcing PostgreSQL schema to a SQL file.

Options:
  --output <dir>                 folder to write to (default: migrations)
  --filename <name>              file name (default: <YYYYMMDDHHMMSS>_init_event_sourcing.sql)
  --schema <name>                schema for every table (default: none, the search_path)
  --events-table <name>          default: events
  --aggregate-heads-table <name> default: aggregate_heads
  --checkpoints-table <name>     default: projection_checkpoints
  -h, --help                     show this help
`;

/** `20261128034455`: the UTC time, as migration tools sort file names. */
function timestamp(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

function parseFlags(args: string[]) {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        output: { type: "string", default: "migrations" },
        filename: { type: "string" },
        schema: { type: "string" },
        "events-table": { type: "string" },
        "aggregate-heads-table": { type: "string" },
        "checkpoints-table": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * Runs the CLI with `args` (without the program name) and returns the exit
 * code: 0 on success, 2 on bad flags or names, 1 when the file cannot be
 * written. Messages go to stdout and stderr.
 *
 * @example
 * ```ts ignore
 * import { migrateGenMain } from "@getpup/pupsourcing/migrate-gen";
 *
 * const code = await migrateGenMain(["--output", "migrations"]);
 * ```
 */
export async function migrateGenMain(args: string[]): Promise<number> {
  let sqlText: string;
  let path: string;
  try {
    const flags = parseFlags(args);
    if (flags.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (flags.output === "") throw new UsageError("--output must not be empty");
    const filename = flags.filename ?? `${timestamp(new Date())}_init_event_sourcing.sql`;
    if (filename === "" || /[\\/]/.test(filename)) {
      throw new UsageError(`--filename must be a plain file name, got ${JSON.stringify(filename)}`);
    }
    sqlText = generateMigration({
      schema: flags.schema,
      eventsTable: flags["events-table"],
      aggregateHeadsTable: flags["aggregate-heads-table"],
      checkpointsTable: flags["checkpoints-table"],
    });
    path = join(flags.output, filename);
  } catch (error) {
    if (!(error instanceof PupsourcingError)) throw error;
    process.stderr.write(`migrate-gen: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  try {
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(path, sqlText, { flag: "wx" });
  } catch (error) {
    process.stderr.write(`migrate-gen: cannot write ${path}: ${(error as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`Generated PostgreSQL migration: ${path}\n`);
  return 0;
}

if ((import.meta as { main?: boolean }).main) {
  process.exitCode = await migrateGenMain(process.argv.slice(2));
}
