/**
 * What the commands (`migrate-gen`, `migrate`, and the `pupsourcing` CLI
 * of `src/cli/`) share: flag mistakes as {@linkcode UsageError}s, the
 * table-name flags, the database URL and a database failure as one line.
 *
 * @module
 */

import { PupsourcingError } from "./es/errors.ts";
import type { TableNames } from "./postgres/tables.ts";

/** A bad command line: the command prints it with its usage and exits 2. */
export class UsageError extends PupsourcingError {}

/** The flags that name the tables, as `parseArgs` options. */
export const TABLE_FLAGS: {
  schema: { type: "string" };
  "events-table": { type: "string" };
  "aggregate-heads-table": { type: "string" };
  "checkpoints-table": { type: "string" };
  "log-offset-table": { type: "string" };
  "snapshots-table": { type: "string" };
  "parked-events-table": { type: "string" };
  "group-members-table": { type: "string" };
} = {
  schema: { type: "string" },
  "events-table": { type: "string" },
  "aggregate-heads-table": { type: "string" },
  "checkpoints-table": { type: "string" },
  "log-offset-table": { type: "string" },
  "snapshots-table": { type: "string" },
  "parked-events-table": { type: "string" },
  "group-members-table": { type: "string" },
};

/** The usage lines of {@linkcode TABLE_FLAGS}. */
export const TABLE_FLAGS_USAGE =
  `  --schema <name>                schema for every table (default: none, the search_path)
  --events-table <name>          default: events
  --aggregate-heads-table <name> default: aggregate_heads
  --checkpoints-table <name>     default: projection_checkpoints
  --log-offset-table <name>      default: pupsourcing_log_offset
  --snapshots-table <name>       default: snapshots
  --parked-events-table <name>   default: projection_parked_events
  --group-members-table <name>   default: projection_group_members
`;

/**
 * Returns what `parse` (a `parseArgs` call) returns, its errors (an unknown
 * flag, a missing value) turned into {@linkcode UsageError}s of one line.
 */
export function usageErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError(parseArgsComplaint(error));
  }
}

/**
 * A `parseArgs` error in this command line's words. Node's own texts (the
 * same under Deno and Bun) run over three lines, or suggest a positional
 * argument after `--` to a command that takes none.
 */
function parseArgsComplaint(error: unknown): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = String(message ?? error);
  const flag = /'(-[^' ,]+)/.exec(text)?.[1];
  if (flag === undefined) return text.replaceAll("\n", " ");
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown flag ${flag}`;
  // Node names a flag with a short alias as '-n, --lines': say the long name.
  const long = /(--[\w-]+)/.exec(text)?.[1] ?? flag;
  if (text.includes("ambiguous")) {
    return `${flag} expects a value, and what follows it starts with "-": to give such a ` +
      `value, write ${long}=<value>`;
  }
  if (text.includes("argument missing")) return `${long} expects a value`;
  if (text.includes("does not take an argument")) return `${long} takes no value`;
  return text.replaceAll("\n", " ");
}

/** The table names given by {@linkcode TABLE_FLAGS}; unset ones stay default. */
export function tableNames(flags: {
  schema?: string;
  "events-table"?: string;
  "aggregate-heads-table"?: string;
  "checkpoints-table"?: string;
  "log-offset-table"?: string;
  "snapshots-table"?: string;
  "parked-events-table"?: string;
  "group-members-table"?: string;
}): TableNames {
  return {
    schema: flags.schema,
    eventsTable: flags["events-table"],
    aggregateHeadsTable: flags["aggregate-heads-table"],
    checkpointsTable: flags["checkpoints-table"],
    logOffsetTable: flags["log-offset-table"],
    snapshotsTable: flags["snapshots-table"],
    parkedEventsTable: flags["parked-events-table"],
    groupMembersTable: flags["group-members-table"],
  };
}

/** The database URL and where it came from (`--database-url` or `DATABASE_URL`). */
export interface DatabaseUrl {
  url: string;
  source: "--database-url" | "DATABASE_URL";
}

/**
 * The database URL from `--database-url`, else `env.DATABASE_URL`.
 *
 * @throws {UsageError} when neither is set, or it is not a postgres:// URL.
 */
export function databaseUrl(
  flag: string | undefined,
  env: Record<string, string | undefined>,
): DatabaseUrl {
  const source = flag === undefined ? "DATABASE_URL" : "--database-url";
  const url = flag ?? env.DATABASE_URL ?? "";
  if (url === "") {
    throw new UsageError("no database: pass --database-url <url> or set DATABASE_URL");
  }
  if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) {
    throw new UsageError(`${source} must be a postgres:// URL, got ${JSON.stringify(url)}`);
  }
  return { url, source };
}

/**
 * One line: what could not be done, on which database (never its
 * password), where its URL came from, and why.
 */
export function databaseFailure(
  action: string,
  error: unknown,
  { url, source }: DatabaseUrl,
): string {
  const { hostname, port, pathname } = new URL(url);
  const where = `${hostname || "localhost"}:${port || "5432"}${pathname}`;
  const { message, code } = error as { message?: string; code?: string };
  const reason = `${message ?? String(error)}${
    code && !message?.includes(code) ? ` (${code})` : ""
  }`;
  const hint = source === "DATABASE_URL" ? " (check DATABASE_URL, or pass --database-url)" : "";
  return `${action} ${where}, from ${source}${hint}: ${reason.replace(/\s*\n\s*/g, " ")}`;
}
