/**
 * `pupsourcing tail`: prints the end of the global log (or of one
 * aggregate's stream) as lines or JSON, decoding JSON payloads, and with
 * `--follow` the events that come after.
 *
 * @module
 */

import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import type { Cursor, PersistedEvent } from "../es/event.ts";
import { cursorBeforeLast } from "../postgres/lag.ts";
import {
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  parseFlags,
  runCommand,
  stopOnSignals,
  toJson,
  UsageError,
} from "./common.ts";

const USAGE = `Usage: pupsourcing tail [options]

Prints the last events of the global log, in log order (commit-safe: below
the safe horizon), one per line: position, transaction id, time, aggregate
and version, event type and payload (JSON payloads decoded, others as
base64). With --json, one JSON object per event. With --follow, keeps
printing new events until Ctrl-C.

Options:
  -n, --lines <n>                how many of the last events (default 20)
  -f, --follow                   then wait for new events
  --aggregate <type:id>          one aggregate's stream instead of the log
${COMMON_USAGE}`;

const FOLLOW_POLL_MS = 200;
const PAGE = 1000;

/** The `tail` command. */
export const tail: Command = {
  name: "tail",
  summary: "print the end of the log or of one aggregate, --follow for more",
  usage: USAGE,
  run(args, env) {
    const { values } = parseFlags(args, {
      ...COMMON_FLAGS,
      lines: { type: "string", short: "n", default: "20" },
      follow: { type: "boolean", short: "f", default: false },
      aggregate: { type: "string" },
    }, { min: 0, max: 0, names: "" });
    return runCommand(tail, values.help, async (track) => {
      const lines = Number(values.lines);
      if (!Number.isSafeInteger(lines) || lines < 0) {
        throw new UsageError(
          `--lines must be an integer >= 0, got ${JSON.stringify(values.lines)}`,
        );
      }
      let aggregate: { type: string; id: string } | undefined;
      if (values.aggregate !== undefined) {
        const at = values.aggregate.indexOf(":");
        if (at <= 0 || at === values.aggregate.length - 1) {
          throw new UsageError(
            `--aggregate must be TYPE:ID, got ${JSON.stringify(values.aggregate)}`,
          );
        }
        aggregate = { type: values.aggregate.slice(0, at), id: values.aggregate.slice(at + 1) };
      }
      const { sql, store } = track(connect(values, env));
      const print = (event: PersistedEvent) =>
        process.stdout.write((values.json ? toJson(asJson(event)) : line(event)) + "\n");
      const stop = values.follow ? stopOnSignals() : undefined;
      try {
        if (aggregate) {
          const stream = await store.readAggregateStream(sql, aggregate.type, aggregate.id);
          stream.events.slice(Math.max(0, stream.events.length - lines)).forEach(print);
          let version = stream.version;
          while (stop && !stop.signal.aborted) {
            const next = await store.readAggregateStream(sql, aggregate.type, aggregate.id, {
              fromVersion: version + 1n,
            });
            next.events.forEach(print);
            if (next.events.length > 0) version = next.version;
            else await pause(stop.signal);
          }
          return;
        }
        let after: Cursor = await cursorBeforeLast(sql, store.tables, lines);
        for (;;) {
          const page = await store.readEvents(sql, { after, limit: PAGE });
          page.forEach(print);
          if (page.length > 0) after = page.at(-1)!;
          if (page.length === PAGE) continue;
          if (!stop || stop.signal.aborted) return;
          await pause(stop.signal);
          if (stop.signal.aborted) return;
        }
      } finally {
        stop?.dispose();
      }
    });
  },
};

function pause(signal: AbortSignal): Promise<void> {
  return sleep(FOLLOW_POLL_MS, undefined, { signal }).catch(() => {});
}

/** The payload as JSON when it is JSON text, else as base64. */
function payloadOf(bytes: Uint8Array): { json: unknown } | { base64: string } {
  try {
    return { json: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) };
  } catch {
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return { base64: btoa(binary) };
  }
}

function asJson(event: PersistedEvent) {
  const payload = payloadOf(event.payload);
  return {
    globalPosition: event.globalPosition,
    transactionId: event.transactionId,
    createdAt: event.createdAt,
    aggregateType: event.aggregateType,
    aggregateId: event.aggregateId,
    aggregateVersion: event.aggregateVersion,
    eventId: event.eventId,
    eventType: event.eventType,
    eventVersion: event.eventVersion,
    ...("json" in payload ? { payload: payload.json } : { payloadBase64: payload.base64 }),
    metadata: event.metadata,
  };
}

function line(event: PersistedEvent): string {
  const payload = payloadOf(event.payload);
  return [
    event.globalPosition,
    event.transactionId,
    event.createdAt.toISOString(),
    `${event.aggregateType}/${event.aggregateId}@${event.aggregateVersion}`,
    event.eventType,
    "json" in payload ? toJson(payload.json) : `base64:${payload.base64}`,
  ].join("  ");
}
