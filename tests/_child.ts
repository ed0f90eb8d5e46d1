/**
 * Runs a fixture of `tests/fixtures/` under the runtime running the tests:
 * `deno run -A` under Deno, the compiled `.js` under Node, the `.ts` under Bun.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import process from "node:process";

const versions = process.versions as Record<string, string | undefined>;

/** The command and arguments that run `tests/fixtures/<name>.ts` with `args`. */
export function fixtureCommand(name: string, args: string[]): [string, string[]] {
  if (versions.deno) {
    const file = fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url));
    return [process.execPath, ["run", "-A", file, ...args]];
  }
  const ext = versions.bun ? ".ts" : ".js";
  const file = fileURLToPath(new URL(`./fixtures/${name}${ext}`, import.meta.url));
  return [process.execPath, [file, ...args]];
}
