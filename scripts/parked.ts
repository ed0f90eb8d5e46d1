/**
 * The `parked` command: lists, replays and discards the events a
 * projection parked (see `listParked`, `replayParked` and `discardParked`
 * in `@getpup/pupsourcing/projection`).
 *
 * ```sh
 * deno task parked list --projection balances
 * deno task parked replay --projection-module ./balances.ts --export balances
 * deno task parked discard --projection balances --aggregate-type Account --aggregate-id acc-7
 * ```
 *
 * @example Run it from a script
 * ```ts ignore
 * import { parkedMain } from "./parked.ts";
 *
 * const code = await parkedMain(["list", "--projection", "balances"]);
 * ```
 *
 * @module
 */

import process from "node:process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import {
  TABLE_FLAGS,
  TABLE_FLAGS_USAGE,
  tableNames,
  UsageError,
  usageErrors,
} from "../src/cli_flags.ts";
import { PupsourcingError } from "../src/es/errors.ts";
import { PostgresStore } from "../src/postgres/store.ts";
import type { ListParkedOptions, ParkedFilter } from "../src/projection/parked_admin.ts";
import { discardParked, listParked } from "../src/projection/parked_admin.ts";
import type { Projection } from "../src/projection/projection.ts";
import { replayParked } from "../src/projection/replay.ts";

const USAGE = `Usage: parked <list|replay|discard> [options]

  list      the parked events, in log order, one per line
  replay    runs the projection's handler again on its parked events, in each
            aggregate's order; those that fail again stay parked
  discard   marks parked events discarded (kept for audit, never applied)

Options:
  --database-url <url>           the database (default: the DATABASE_URL variable)
  --projection <name>            the projection (list: default every one; discard: required)
  --status <status>              list: parked (default), skipped, resolved, discarded or all
  --projection-module <path>     replay: a module exporting the projection
  --export <name>                replay: the projection's export (default: default)
  --aggregate-type <type>        replay, discard: only this aggregate (with --aggregate-id)
  --aggregate-id <id>
  --event-id <uuid>              replay, discard: only these events (repeatable)
${TABLE_FLAGS_USAGE}  -h, --help                     show this help
`;

/**
 * Runs the command with `args` and returns the exit code: 0 on success, 2
 * on bad flags or a missing database URL, 1 on a failure (with a reason).
 *
 * @example
 * ```ts ignore
 * const code = await parkedMain(["discard", "--projection", "balances", "--event-id", id]);
 * ```
 */
export async function parkedMain(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let command: string;
  let flags;
  let url: string;
  try {
    const parsed = usageErrors(() =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          "database-url": { type: "string" },
          projection: { type: "string" },
          status: { type: "string" },
          "projection-module": { type: "string" },
          export: { type: "string" },
          "aggregate-type": { type: "string" },
          "aggregate-id": { type: "string" },
          "event-id": { type: "string", multiple: true },
          ...TABLE_FLAGS,
          help: { type: "boolean", short: "h" },
        },
      })
    );
    flags = parsed.values;
    if (flags.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    command = parsed.positionals[0] ?? "";
    if (parsed.positionals.length !== 1 || !["list", "replay", "discard"].includes(command)) {
      throw new UsageError("expected one command: list, replay or discard");
    }
    url = flags["database-url"] ?? env.DATABASE_URL ?? "";
    if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) {
      throw new UsageError("no database: pass --database-url <url> or set DATABASE_URL");
    }
    if (command === "discard" && flags.projection === undefined) {
      throw new UsageError("discard needs --projection <name>");
    }
    if (command === "replay" && flags["projection-module"] === undefined) {
      throw new UsageError("replay needs --projection-module <path>");
    }
    if ((flags["aggregate-type"] === undefined) !== (flags["aggregate-id"] === undefined)) {
      throw new UsageError("--aggregate-type and --aggregate-id go together");
    }
  } catch (error) {
    if (!(error instanceof PupsourcingError)) throw error;
    process.stderr.write(`parked: ${error.message}\n\n${USAGE}`);
    return 2;
  }

  const store = new PostgresStore({ ...tableNames(flags), notifyChannel: false });
  const filter: ParkedFilter = {
    aggregate: flags["aggregate-type"] === undefined
      ? undefined
      : { type: flags["aggregate-type"], id: flags["aggregate-id"]! },
    eventIds: flags["event-id"],
  };
  const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 10 });
  try {
    if (command === "list") {
      const rows = await listParked(sql, store, {
        projection: flags.projection,
        status: flags.status as ListParkedOptions["status"],
      });
      for (const p of rows) {
        const e = p.event;
        process.stdout.write(
          [
            p.projection,
            e.globalPosition,
            `${e.aggregateType}/${e.aggregateId}@${e.aggregateVersion}`,
            e.eventType,
            e.eventId,
            p.status,
            p.reason,
            `attempts=${p.attempts}`,
            p.parkedAt.toISOString(),
            p.error ?? "",
          ].join("\t") + "\n",
        );
      }
    } else if (command === "discard") {
      const count = await discardParked(sql, store, flags.projection!, filter);
      process.stdout.write(`Discarded ${count} parked event(s)\n`);
    } else {
      const module = await import(pathToFileURL(resolve(flags["projection-module"]!)).href);
      const projection = module[flags.export ?? "default"] as Projection;
      const { resolved, failed } = await replayParked(sql, store, projection, filter);
      process.stdout.write(`Replayed ${resolved} parked event(s); ${failed} failed again\n`);
      if (failed > 0) return 1;
    }
    return 0;
  } catch (error) {
    const { message } = error as { message?: string };
    process.stderr.write(`parked: ${message ?? String(error)}\n`);
    return 1;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if ((import.meta as { main?: boolean }).main) {
  process.exitCode = await parkedMain(process.argv.slice(2));
}
