/**
 * `pupsourcing migrate-gen`: writes the schema versions as SQL files, as
 * `src/migrate_gen.ts` does.
 *
 * @module
 */

import { migrateGenMain } from "../migrate_gen.ts";
import type { Command } from "./common.ts";

/** The `migrate-gen` command. */
export const migrateGen: Command = {
  name: "migrate-gen",
  summary: "write the schema versions as SQL files, for your own migration tool",
  usage: "see pupsourcing migrate-gen --help",
  run: (args) => migrateGenMain(args),
};
