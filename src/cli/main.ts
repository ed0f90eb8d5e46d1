/**
 * The `pupsourcing` command line: schema migrations, the projection
 * runner, and the operations (status, horizon, reset, rebuild, parked
 * events, tail).
 *
 * ```sh
 * deno task pupsourcing status                     # in this repository
 * deno run -A jsr:@getpup/pupsourcing/cli status   # from the package
 * npx pupsourcing status                           # the npm package, Node and Bun
 * ```
 *
 * Every command takes `--help`, `--json`, and `--database-url` (or
 * `DATABASE_URL`). Exit codes: 0 done, 1 a runtime failure, 2 a usage
 * error; a failure is one line on stderr, with the fix.
 *
 * @example Run a command from code
 * ```ts ignore
 * import { cliMain } from "@getpup/pupsourcing/cli";
 *
 * const code = await cliMain(["status", "--json"]); // DATABASE_URL from the environment
 * ```
 *
 * @module
 */

import process from "node:process";
import { type Command, fail } from "./common.ts";
import { horizon } from "./horizon.ts";
import { migrate } from "./migrate.ts";
import { migrateGen } from "./migrate_gen.ts";
import { parked } from "./parked.ts";
import { rebuild } from "./rebuild.ts";
import { reset } from "./reset.ts";
import { run } from "./run.ts";
import { status } from "./status.ts";
import { tail } from "./tail.ts";

const COMMANDS: readonly Command[] = [
  migrateGen,
  migrate,
  run,
  status,
  horizon,
  reset,
  rebuild,
  parked,
  tail,
];

const USAGE = `Usage: pupsourcing <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)} ${c.summary}`).join("\n")}

Every command takes --help and --json, and those that use the database
--database-url <url> (default: the DATABASE_URL variable).
Exit codes: 0 done, 1 a runtime failure, 2 a usage error.
`;

/**
 * Runs the command line `args` (without the program name) and resolves to
 * the exit code: 0 on success, 2 on a usage error (an unknown command or
 * flag, a bad value, a name that does not exist), 1 on a runtime failure
 * (the database unreachable, a projection busy, a handler failing), each
 * with a one-line reason on stderr.
 *
 * @example
 * ```ts ignore
 * import { cliMain } from "@getpup/pupsourcing/cli";
 *
 * process.exitCode = await cliMain(["status", "--json"]);
 * ```
 */
export async function cliMain(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  endQuietlyOnClosedPipe();
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(
      `pupsourcing: unknown command ${JSON.stringify(name)} (commands: ${
        COMMANDS.map((c) => c.name).join(", ")
      }; see pupsourcing --help)\n`,
    );
    return 2;
  }
  try {
    return await command.run(rest, env);
  } catch (error) {
    return fail(command.name, error);
  }
}

let watchingPipe = false;

/**
 * A reader that stops early (`pupsourcing tail | head`) closes the pipe:
 * the output is done, which is no failure and no reason for a stack trace.
 */
function endQuietlyOnClosedPipe(): void {
  if (watchingPipe) return;
  watchingPipe = true;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
}

if ((import.meta as { main?: boolean }).main) {
  process.exitCode = await cliMain(process.argv.slice(2));
}
