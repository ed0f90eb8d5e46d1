/**
 * `pupsourcing parked list|replay|discard`: the events a projection
 * parked (see `listParked`, `replayParked` and `discardParked`).
 *
 * @module
 */

import process from "node:process";
import {
  discardParked,
  listParked,
  type ListParkedOptions,
  type ParkedFilter,
  replayParked,
} from "../projection/mod.ts";
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

const USAGE = `Usage: pupsourcing parked <list|replay|discard> [options]

  list      the parked events, in log order, one per line
  replay    runs the projection's handler again on its parked events, in each
            aggregate's order; those that fail again stay parked (exit 1)
  discard   marks parked events discarded (kept for audit, never applied)

Options:
  --projection <name>            the projection (list: default every one;
                                 replay, discard: required)
  --status <status>              list: parked (default), skipped, resolved,
                                 discarded or all
  --aggregate-type <type>        replay, discard: only this aggregate (with --aggregate-id)
  --aggregate-id <id>
  --event-id <uuid>              replay, discard: only these events (repeatable)
${
  MODULE_USAGE.replace("a module exporting projections", "replay: a module exporting it")
}${COMMON_USAGE}`;

const ACTIONS = ["list", "replay", "discard"];

/** The `parked` command. */
export const parked: Command = {
  name: "parked",
  summary: "list, replay or discard parked events",
  usage: USAGE,
  run(args, env) {
    const { values, positionals } = parseFlags(args, {
      ...COMMON_FLAGS,
      projection: { type: "string" },
      status: { type: "string" },
      module: { type: "string" },
      "aggregate-type": { type: "string" },
      "aggregate-id": { type: "string" },
      "event-id": { type: "string", multiple: true },
    }, { min: 1, max: 1, names: "one of list, replay or discard" });
    return runCommand(parked, values.help, async (track) => {
      const [action] = positionals;
      if (!ACTIONS.includes(action)) {
        throw new UsageError(`expected list, replay or discard, got ${JSON.stringify(action)}`);
      }
      if (action !== "list" && values.projection === undefined) {
        throw new UsageError(`${action} needs --projection <name>`);
      }
      if (action === "replay" && values.module === undefined) {
        throw new UsageError("replay needs --module <path>, the module exporting the projection");
      }
      if ((values["aggregate-type"] === undefined) !== (values["aggregate-id"] === undefined)) {
        throw new UsageError("--aggregate-type and --aggregate-id go together");
      }
      const filter: ParkedFilter = {
        aggregate: values["aggregate-type"] === undefined
          ? undefined
          : { type: values["aggregate-type"], id: values["aggregate-id"]! },
        eventIds: values["event-id"],
      };
      const module = values.module === undefined ? undefined : await loadModule(values.module);
      const store = storeFromFlags(values, module?.storeConfig);
      const { sql } = track(connect(values, env, { store }));
      if (action === "list") {
        const rows = await listParked(sql, store, {
          projection: values.projection,
          status: values.status as ListParkedOptions["status"],
        });
        if (values.json) {
          printJson(rows.map((p) => ({ ...p, event: { ...p.event, payload: undefined } })));
          return;
        }
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
      } else if (action === "discard") {
        const count = await discardParked(sql, store, values.projection!, filter);
        if (values.json) printJson({ discarded: count });
        else process.stdout.write(`Discarded ${count} parked event(s)\n`);
      } else {
        const projection = pickProjection(module!, values.projection!, values.module!);
        const { resolved, failed } = await replayParked(sql, store, projection, filter);
        if (values.json) printJson({ resolved, failed });
        else process.stdout.write(`Replayed ${resolved} parked event(s); ${failed} failed again\n`);
        if (failed > 0) return 1;
      }
    });
  },
};
