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

Refused while a batch of the projection runs or a worker holds a lease on
one of its segments, unless --force (which waits for a running batch).

Options:
  --to <start|now>               where to (default: start)
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
      module: { type: "string" },
    }, { min: 1, max: 1, names: "one projection NAME" });
    return runCommand(reset, values.help, async (track) => {
      const [name] = positionals;
      const to = values.to;
      if (to !== "start" && to !== "now") {
        throw new UsageError(`--to must be start or now, got ${JSON.stringify(to)}`);
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
            (outcome.hookRan ? "; its reset hook ran" : "; no reset hook (no --module)") +
            (outcome.parkedRemoved > 0 ? `; ${outcome.parkedRemoved} parked rows removed` : "") +
            ".\n",
        );
      }
    });
  },
};
