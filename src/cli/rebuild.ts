/**
 * `pupsourcing rebuild NAME --module PATH`: resets a projection to the
 * start of the log (its `reset` hook clears the read model in the same
 * transaction), then catches it up in this process, with a progress bar on
 * a terminal and plain lines otherwise.
 *
 * @module
 */

import process from "node:process";
import {
  ProjectionProcessor,
  projectionStatus,
  resetProjection,
  segmentOwnership,
} from "../projection/mod.ts";
import { countEvents } from "../postgres/lag.ts";
import { countingLogger } from "../runner/report.ts";
import {
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  loadModule,
  MODULE_USAGE,
  parseFlags,
  pickProjection,
  runCommand,
  stopOnSignals,
  storeFromFlags,
  UsageError,
} from "./common.ts";
import { Progress } from "./progress.ts";

const USAGE = `Usage: pupsourcing rebuild NAME --module <path> [options]

Rebuilds projection NAME of the module: resets its checkpoints to the start
of the log and runs its reset(tx) hook in the same transaction (clear the
read model there), then applies every event up to the newest readable one,
in this process. On a terminal a progress bar shows events done and total,
the rate and the time left; otherwise a line every --report-every seconds.
A projection that never ran is simply built. Ctrl-C stops it (run it again,
or run the projection's workers, to finish).

Refused while a batch of the projection runs or a worker holds a lease on
one of its segments, unless --force: stop its workers first.

Options:
  --force                        reset even while workers hold it
  --batch-size <n>               events per batch (default: the module's
                                 processorConfig, or 100)
  --report-every <seconds>       between progress lines off a terminal (default 5)
${MODULE_USAGE}${COMMON_USAGE}`;

/** The `rebuild` command. */
export const rebuild: Command = {
  name: "rebuild",
  summary: "reset a projection and catch it up here, with a progress bar",
  usage: USAGE,
  run(args, env) {
    const { values, positionals } = parseFlags(args, {
      ...COMMON_FLAGS,
      force: { type: "boolean", default: false },
      module: { type: "string" },
      "batch-size": { type: "string" },
      "report-every": { type: "string", default: "5" },
    }, { min: 1, max: 1, names: "one projection NAME" });
    return runCommand(rebuild, values.help, async (track) => {
      const [name] = positionals;
      if (values.module === undefined) {
        throw new UsageError("rebuild needs --module <path>, the module exporting the projection");
      }
      const everySeconds = Number(values["report-every"]);
      if (!(everySeconds > 0)) {
        throw new UsageError(`--report-every must be a number of seconds > 0`);
      }
      const batchSize = values["batch-size"] === undefined
        ? undefined
        : Number(values["batch-size"]);
      if (batchSize !== undefined && !(Number.isSafeInteger(batchSize) && batchSize > 0)) {
        throw new UsageError(
          `--batch-size must be a positive integer, got ${values["batch-size"]}`,
        );
      }
      const module = await loadModule(values.module);
      const projection = pickProjection(module, name, values.module);
      const store = storeFromFlags(values, module.storeConfig);
      const { sql } = track(connect(values, env, { store }));
      const bar = new Progress(process.stdout, {
        label: `rebuild ${name}`,
        json: values.json === true,
        everyMs: everySeconds * 1000,
      });
      // Made first: a bad configuration fails before anything is reset.
      // The rebuild runs every segment here, as a static worker: no group settings.
      const { group: _group, ...shared } = module.processorConfig;
      const processor = new ProjectionProcessor(sql, store, {
        ...shared,
        ...(batchSize === undefined ? {} : { batchSize }),
        partitionKey: 0,
        totalPartitions: 1,
        logger: countingLogger(module.processorConfig.logger, (n) => bar.add(n)),
      });
      const known = (await projectionStatus(sql, store)).some((s) => s.name === name);
      if (known) {
        // A rebuild runs every segment here, which a live group refuses to
        // share: even --force cannot make that work, so nothing is reset.
        const leased = (await segmentOwnership(sql, store, name)).segments
          .find((s) => s.mode === "group" && s.live);
        if (leased) {
          throw new Error(
            `projection "${name}" is run by a consumer group (member ${leased.ownerId} ` +
              `holds segment ${leased.segment}): stop its members, then rebuild; or reset it ` +
              `(pupsourcing reset) and let the group catch up`,
          );
        }
        await resetProjection(sql, store, projection, { force: values.force });
      }
      const total = await countEvents(sql, store.tables, projection);
      bar.start(Number(total));
      const stop = stopOnSignals();
      try {
        const outcome = await processor.run(projection, {
          mode: "until_caught_up",
          signal: stop.signal,
        });
        bar.finish(
          outcome.status === "caught_up" ? "done" : "stopped",
          outcome.processed + outcome.parked + outcome.skipped,
        );
        return outcome.status === "caught_up" ? 0 : 1;
      } catch (error) {
        bar.finish("failed");
        throw error;
      } finally {
        stop.dispose();
      }
    });
  },
};
