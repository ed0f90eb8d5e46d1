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
import { derivedName, quote, resolveTables, type TableNames } from "./postgres/tables.ts";

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
  const t = resolveTables(config);
  const schema = t.schema ? `CREATE SCHEMA IF NOT EXISTS ${quote(t.schema)};\n\n` : "";
  return `-- pupsourcing event store schema (PostgreSQL 13 or newer)
${schema}-- The event log. The global log is read in (transaction_id, global_position)
-- order, and only below the oldest running transaction, so that an event
-- whose transaction commits late is never skipped.
CREATE TABLE IF NOT EXISTS ${quote(t.events)} (
    global_position bigserial PRIMARY KEY,
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL,
    aggregate_id_hash bigint NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    event_version integer NOT NULL DEFAULT 1,
    payload bytea NOT NULL,
    trace_id text,
    correlation_id text,
    causation_id text,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ${quote(derivedName(t.events, "event_id_key"))} UNIQUE (event_id),
    CONSTRAINT ${quote(derivedName(t.events, "aggregate_version_key"))}
        UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

CREATE INDEX IF NOT EXISTS ${quote(derivedName(t.events, "log_idx"))}
    ON ${quote(t.events)} (transaction_id, global_position);

-- The current version of every aggregate: one row read per append. Its
-- last_transaction_id is the log order key of the aggregate's newest event:
-- an append never files an event below it, so a transaction that got its
-- id early cannot put a later version before an earlier one in the log.
CREATE TABLE IF NOT EXISTS ${quote(t.aggregateHeads)} (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL,
    last_transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Where each projection segment has got to: a (transaction_id,
-- global_position) pair, never a position alone, plus the lease of the
-- worker that owns the segment.
CREATE TABLE IF NOT EXISTS ${quote(t.checkpoints)} (
    projection_name text NOT NULL,
    segment integer NOT NULL,
    segment_count integer NOT NULL,
    transaction_id xid8 NOT NULL DEFAULT '0',
    global_position bigint NOT NULL DEFAULT 0,
    owner_id text,
    lease_expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, segment)
);
`;
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
