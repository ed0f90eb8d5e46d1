/**
 * `pupsourcing run MODULE`: runs the projections a module exports, until
 * SIGINT or SIGTERM (or, with `--until-caught-up`, until they have caught
 * up): the projection worker, without a worker script.
 *
 * @module
 */

import process from "node:process";
import { DEFAULT_NOTIFY_CHANNEL } from "../postgres/mod.ts";
import { runMultipleProjections, workerConfigFromArgs } from "../runner/mod.ts";
import {
  cliLogger,
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  loadModule,
  parseFlags,
  pickProjection,
  printJson,
  runCommand,
  stopOnSignals,
  storeFromFlags,
  UsageError,
} from "./common.ts";

const USAGE =
  `Usage: pupsourcing run MODULE [--group | --partition-key K --total-partitions N] [options]

Runs the projections MODULE exports (each export that is a projection, or an
array of them), each in its own processor, until SIGINT or SIGTERM stops
them cleanly (the batch in flight is rolled back, nothing is lost). The
module may also export storeConfig (table names, NOTIFY channel) and
processorConfig (batch size, segments, onError, ...).

Each worker logs where it starts and its segments, then while it catches up
a progress line (events processed, rate, lag) every --progress-every seconds,
to stderr (JSON lines with --json).

Options:
  --projection <name>            run only this projection (repeatable)
  --group                        join each projection's consumer group: members come and
                                 go, segments move between them through leases
                                 (also PUPSOURCING_GROUP=1; the module's
                                 processorConfig.group sets leaseMs, heartbeatMs)
  --member-id <id>               this member's id (also PUPSOURCING_MEMBER_ID; default
                                 a random UUID)
  --partition-key <k>            static mode: this process's partition (also PARTITION_KEY)
  --total-partitions <n>         processes sharing each projection (also TOTAL_PARTITIONS)
  --until-caught-up              stop once every projection has caught up
  --progress-every <seconds>     between progress lines while catching up (default 10)
  --verbose                      log every batch (debug lines) too
${COMMON_USAGE}`;

/** The `run` command. */
export const run: Command = {
  name: "run",
  summary: "run a module's projections (the projection worker)",
  usage: USAGE,
  run(args, env) {
    const { values, positionals } = parseFlags(args, {
      ...COMMON_FLAGS,
      projection: { type: "string", multiple: true },
      group: { type: "boolean" },
      "member-id": { type: "string" },
      "partition-key": { type: "string" },
      "total-partitions": { type: "string" },
      "until-caught-up": { type: "boolean", default: false },
      "progress-every": { type: "string", default: "10" },
      verbose: { type: "boolean", default: false },
    }, { min: 1, max: 1, names: "one MODULE (a path)" });
    return runCommand(run, values.help, async (track) => {
      const [path] = positionals;
      const progressSeconds = Number(values["progress-every"]);
      if (!(progressSeconds > 0)) {
        throw new UsageError("--progress-every must be a number of seconds > 0");
      }
      const worker = workerConfigFromArgs(args, env);
      const module = await loadModule(path);
      const names = values.projection ?? [...module.projections.keys()];
      const twice = names.find((name, i) => names.indexOf(name) !== i);
      if (twice !== undefined) {
        throw new UsageError(`--projection ${JSON.stringify(twice)} is given twice`);
      }
      const projections = names.map((name) => pickProjection(module, name, path));
      const store = storeFromFlags(values, {
        notifyChannel: DEFAULT_NOTIFY_CHANNEL,
        ...module.storeConfig,
      });
      const { sql } = track(connect(values, env, { store, max: projections.length + 2 }));
      const logger = cliLogger(values.json === true, values.verbose === true);
      // The module's group settings (lease length, heartbeat) apply in group mode only.
      const { group: groupSettings, ...shared } = module.processorConfig;
      const mode = "group" in worker ? { group: { ...groupSettings, ...worker.group } } : worker;
      const stop = stopOnSignals();
      try {
        const outcomes = await runMultipleProjections(
          sql,
          store,
          projections.map((projection) => ({
            projection,
            config: { ...shared, ...mode, logger },
          })),
          {
            signal: stop.signal,
            mode: values["until-caught-up"] ? "until_caught_up" : "continuous",
            progressIntervalMs: progressSeconds * 1000,
          },
        );
        if (values.json) printJson({ outcomes });
        else {
          for (const o of outcomes) {
            process.stdout.write(
              `${o.projection} [${
                o.memberId === undefined ? `${o.partitionKey}/${o.totalPartitions}` : o.memberId
              }]: ${o.status === "caught_up" ? "caught up" : "stopped"}, ${
                count(o.processed, "event", "events")
              } in ${count(o.batches, "batch", "batches")}` +
                (o.parked + o.skipped > 0 ? `, ${o.parked} parked, ${o.skipped} skipped` : "") +
                "\n",
            );
          }
        }
      } finally {
        stop.dispose();
      }
    });
  },
};

/** `1 batch`, `3 batches`. */
function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
