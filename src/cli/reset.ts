/**
 * `pupsourcing reset NAME [--to start|now]`: moves a projection's
 * checkpoints back to the start of the log or on to its tip, running its
 * `reset` hook in the same transaction when `--module` gives the
 * projection (see `resetProjection`).
 *
 * @module
 */

import process from "node:process";
import { resetProjection } from "../projection/mod.ts";
import {
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  loadModule,
  MODULE_USAGE,
  parseFlags,
  pickProjection,
  printJson,
  runCommand,
  storeFromFlags,
  UsageError,
} from "./common.ts";

const USAGE = `Usage: pupsourcing reset NAME [--to start|now] [options]

Moves every checkpoint of projection NAME to the start of the log (its
workers then apply every event again; its parked events are removed) or,
with --to now, on to the newest readable event (the history is skipped).
With --module, the projection's reset(tx) hook runs in the same transaction,
so its read model is cleared exactly when the checkpoints go back. Nothing
is applied here: run its workers, or use rebuild.

A reset to the start needs --module, or --keep-read-model to say that the
read model is cleared some other way (or its handlers are idempotent):
otherwise every event would be applied on top of what it already holds.

Refused while a batch of the projection runs or a worker holds a lease on
one of its segments, unless --force (which waits for a running batch).

Options:
  --to <start|now>               where to (default: start)
  --keep-read-model              reset to the start without a reset hook
  --force                        reset even while workers hold it
${MODULE_USAGE}${COMMON_USAGE}`;

/** The `reset` command. */
export const reset: Command = {
  name: "reset",
  summary: "move a projection's checkpoints to the start (or now), clearing its read model",
  usage: USAGE,
  run(args, env) {
    const { values, positionals } = parseFlags(args, {
      ...COMMON_FLAGS,
      to: { type: "string", default: "start" },
      force: { type: "boolean", default: false },
      "keep-read-model": { type: "boolean", default: false },
      module: { type: "string" },
    }, { min: 1, max: 1, names: "one projection NAME" });
    return runCommand(reset, values.help, async (track) => {
      const [name] = positionals;
      const to = values.to;
      if (to !== "start" && to !== "now") {
        throw new UsageError(`--to must be start or now, got ${JSON.stringify(to)}`);
      }
      if (to === "start" && values.module === undefined && !values["keep-read-model"]) {
        throw new UsageError(
          "a reset to the start needs --module (its reset hook clears the read model), " +
            "or --keep-read-model when the read model is cleared some other way",
        );
      }
      const module = values.module === undefined ? undefined : await loadModule(values.module);
      const projection = module ? pickProjection(module, name, values.module!) : name;
      const store = storeFromFlags(values, module?.storeConfig);
      const { sql } = track(connect(values, env, { store }));
      const outcome = await resetProjection(sql, store, projection, { to, force: values.force });
      if (values.json) printJson({ projection: name, to, ...outcome });
      else {
        const { transactionId, globalPosition } = outcome.checkpoint;
        process.stdout.write(
          `Reset ${name}: ${outcome.segments} segments to ${transactionId}/${globalPosition} ` +
            `(${to === "start" ? "the start of the log" : "the newest readable event"})` +
            (outcome.hookRan ? "; its reset hook ran" : "; the read model was kept") +
            (outcome.parkedRemoved > 0 ? `; ${outcome.parkedRemoved} parked rows removed` : "") +
            ".\n",
        );
      }
    });
  },
};
