/**
 * `pupsourcing migrate`: applies the pending schema versions, as
 * `src/migrate.ts` does (`--dry-run`, `--rebase`, the table flags).
 *
 * @module
 */

import { migrateMain } from "../migrate.ts";
import type { Command } from "./common.ts";

/** The `migrate` command. */
export const migrate: Command = {
  name: "migrate",
  summary: "apply the pending schema versions (--dry-run, --rebase)",
  usage: "see pupsourcing migrate --help",
  run: (args, env) => migrateMain(args, env),
};
