/**
 * What every command of the `pupsourcing` CLI shares: flag parsing (the
 * common flags, `--help`), the database connection, loading a user's
 * module of projections, printing text or `--json`, and the exit codes:
 * 0 done, 1 a runtime failure (one line: what and why), 2 a usage error
 * (one line: what is wrong and where the help is).
 *
 * @module
 */

import process from "node:process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import {
  databaseFailure,
  type DatabaseUrl,
  databaseUrl,
  TABLE_FLAGS,
  TABLE_FLAGS_USAGE,
  tableNames,
  UsageError,
  usageErrors,
} from "../cli_flags.ts";
import { PupsourcingError, ValidationError } from "../es/errors.ts";
import type { LogFields, Logger } from "../es/logger.ts";
import { PostgresStore, type PostgresStoreConfig } from "../postgres/mod.ts";
import type { ProcessorConfig, Projection } from "../projection/mod.ts";

export { UsageError };

/** The flags every database command takes. */
export const COMMON_FLAGS = {
  "database-url": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h" },
  ...TABLE_FLAGS,
} as const;

/** The usage lines of {@linkcode COMMON_FLAGS}. */
export const COMMON_USAGE =
  `  --database-url <url>           the database (default: the DATABASE_URL variable)
  --json                         print JSON (one object, or one per line) instead of text
${TABLE_FLAGS_USAGE}  -h, --help                     show this help
`;

/** A command of the CLI: its name, its help, and what it does. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  usage: string;
  /** Runs with the arguments after the command's name; resolves to the exit code. */
  run(args: string[], env: Record<string, string | undefined>): Promise<number>;
}

/** One flag, as `parseArgs` takes it. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  default?: string | boolean | string[];
}

/** The values of flags `O`: a string, a boolean, or strings for a repeatable flag. */
export type FlagValues<O extends Record<string, FlagSpec>> = {
  [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean
    : O[K] extends { multiple: true } ? string[]
    : string;
};

/** Parsed flags and positionals of one command. */
export interface Parsed<O extends Record<string, FlagSpec>> {
  values: FlagValues<O>;
  positionals: string[];
}

/** `parseArgs` in strict mode, its complaints as {@linkcode UsageError}s. */
export function parseFlags<O extends Record<string, FlagSpec>>(
  args: string[],
  options: O,
  positionals: { min: number; max: number; names: string },
): Parsed<O> {
  const parsed = usageErrors(() =>
    parseArgs({ args, options, strict: true, allowPositionals: positionals.max > 0 })
  );
  const helped = (parsed.values as { help?: boolean }).help === true;
  const count = parsed.positionals.length;
  if (!helped && (count < positionals.min || count > positionals.max)) {
    throw new UsageError(
      positionals.max === 0
        ? `unexpected argument ${JSON.stringify(parsed.positionals[0])}`
        : `expected ${positionals.names}, got ${
          count === 0 ? "nothing" : parsed.positionals.map((p) => JSON.stringify(p)).join(" ")
        }`,
    );
  }
  return { values: parsed.values as FlagValues<O>, positionals: parsed.positionals };
}

/** What a command needs of the database: the client, the store and the URL for messages. */
export interface Connection {
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: postgres.Sql<any>;
  store: PostgresStore;
  database: DatabaseUrl;
}

/** The store of the table flags (no NOTIFY: an admin command wakes nobody). */
export function storeFromFlags(
  flags: Parameters<typeof tableNames>[0],
  extra: PostgresStoreConfig = {},
): PostgresStore {
  return new PostgresStore({ ...tableNames(flags), notifyChannel: false, ...extra });
}

/** Opens a client on the URL of the flags or the environment. */
export function connect(
  flags: { "database-url"?: string } & Parameters<typeof tableNames>[0],
  env: Record<string, string | undefined>,
  options: { max?: number; store?: PostgresStore } = {},
): Connection {
  const database = databaseUrl(flags["database-url"], env);
  const store = options.store ?? storeFromFlags(flags);
  const sql = postgres(database.url, {
    max: options.max ?? 2,
    onnotice: () => {},
    connect_timeout: 10,
    // See docs/projections.md: a connection lost while fetching array
    // types escapes as an unhandled rejection; nothing here needs them.
    fetch_types: false,
  });
  return { sql, store, database };
}

/**
 * Runs `body` as command `name`: prints its `--help` when asked, turns a
 * {@linkcode UsageError} or `ValidationError` into exit 2 and any other
 * failure into exit 1, each as one line on stderr, and closes the
 * connection it opened.
 */
export async function runCommand(
  command: Pick<Command, "name" | "usage">,
  help: boolean | undefined,
  body: (track: (c: Connection) => Connection) => Promise<number | void>,
): Promise<number> {
  if (help) {
    process.stdout.write(command.usage);
    return 0;
  }
  let connection: Connection | undefined;
  try {
    return (await body((c) => connection = c)) ?? 0;
  } catch (error) {
    return fail(command.name, error, connection?.database);
  } finally {
    await connection?.sql.end({ timeout: 5 });
  }
}

/** Prints the one-line reason of `error` and returns its exit code. */
export function fail(name: string, error: unknown, database?: DatabaseUrl): number {
  const usage = error instanceof UsageError || error instanceof ValidationError;
  const line = usage || error instanceof PupsourcingError || database === undefined
    ? oneLine((error as Error)?.message ?? String(error))
    : databaseFailure("failed on", error, database);
  const hint = usage ? ` (see pupsourcing ${name} --help)` : "";
  process.stderr.write(`pupsourcing ${name}: ${line}${hint}\n`);
  return usage ? 2 : 1;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

/** Writes `value` as JSON (bigints as strings, dates as ISO text) and a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(toJson(value) + "\n");
}

/** `value` as JSON: bigints as decimal strings (exact), dates as ISO strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? String(v) : v));
}

/** Rows as aligned text columns, the first row the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
    .join("\n") + "\n";
}

/** Seconds as `0.4s`, `12s`, `3m05s`, `2h01m`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 10) return `${Number(seconds.toFixed(1))}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** What a user's module gives the CLI. */
export interface UserModule {
  /** Its projections, by name, in export order. */
  projections: Map<string, Projection>;
  /** `export const storeConfig`: its table names and channel. */
  storeConfig: PostgresStoreConfig;
  /** `export const processorConfig`: batch size, segments, error policy... */
  processorConfig: ProcessorConfig;
}

/** The module flag's help line. */
export const MODULE_USAGE =
  `  --module <path>                a module exporting projections (each export that is a
                                 projection, or an array of them; optionally
                                 storeConfig and processorConfig)
`;

/**
 * Loads the user's module and finds its projections: every export that is
 * a projection (an object with a `name` and a `handle` function), or an
 * array of them.
 *
 * @throws {UsageError} when it cannot be loaded, has no projections, or
 * two have the same name.
 */
export async function loadModule(path: string): Promise<UserModule> {
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(resolve(path)).href);
  } catch (error) {
    throw new UsageError(`cannot load the module ${path}: ${oneLine((error as Error).message)}`);
  }
  const projections = new Map<string, Projection>();
  for (const [key, value] of Object.entries(module)) {
    if (key === "storeConfig" || key === "processorConfig") continue;
    for (const candidate of Array.isArray(value) ? value : [value]) {
      if (!isProjection(candidate)) continue;
      if (projections.has(candidate.name) && projections.get(candidate.name) !== candidate) {
        throw new UsageError(
          `${path} has two projections named ${JSON.stringify(candidate.name)}: ` +
            "give each its own name (the name is the key of its checkpoints)",
        );
      }
      projections.set(candidate.name, candidate);
    }
  }
  if (projections.size === 0) {
    throw new UsageError(
      `${path} exports no projection: export objects with a name and a handle(event, tx) ` +
        "function (or an array of them)",
    );
  }
  return {
    projections,
    storeConfig: (module.storeConfig ?? {}) as PostgresStoreConfig,
    processorConfig: (module.processorConfig ?? {}) as ProcessorConfig,
  };
}

function isProjection(value: unknown): value is Projection {
  const p = value as Partial<Projection> | null;
  return typeof p === "object" && p !== null && typeof p.name === "string" &&
    typeof p.handle === "function";
}

/** The module's projection `name`. @throws {UsageError} naming those it has. */
export function pickProjection(module: UserModule, name: string, path: string): Projection {
  const projection = module.projections.get(name);
  if (projection) return projection;
  throw new UsageError(
    `${path} has no projection ${JSON.stringify(name)} (it has: ${
      [...module.projections.keys()].join(", ")
    })`,
  );
}

/**
 * A logger printing one line per message to stderr: `info`/`error` (and
 * `debug` when verbose), as text or JSON lines.
 */
export function cliLogger(json: boolean, verbose = false): Logger {
  const write = (level: string) => (message: string, fields: LogFields = {}) => {
    const time = new Date().toISOString();
    process.stderr.write(
      json
        ? toJson({ time, level, message, ...plain(fields) }) + "\n"
        : `${time} ${level.padEnd(5)} ${message}${
          Object.entries(fields).filter(([, v]) => v !== undefined)
            .map(([k, v]) => ` ${k}=${text(v)}`).join("")
        }\n`,
    );
  };
  return {
    debug: verbose ? write("debug") : () => {},
    info: write("info"),
    error: write("error"),
  };
}

/** Fields for JSON: errors as their message. */
function plain(fields: LogFields): LogFields {
  return Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v]),
  );
}

function text(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") return /\s/.test(value) ? JSON.stringify(value) : value;
  if (typeof value === "bigint") return String(value);
  return toJson(value);
}

/** An `AbortController` aborted by SIGINT or SIGTERM (listeners removed by `dispose`). */
export function stopOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return {
    signal: controller.signal,
    dispose() {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    },
  };
}
