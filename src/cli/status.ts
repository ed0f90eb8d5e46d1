/**
 * `pupsourcing status [NAME]`: per projection, its segments, oldest and
 * newest checkpoint, lag in events and seconds, parked events, last error
 * and segment owners (see `projectionStatus`).
 *
 * @module
 */

import process from "node:process";
import { maxCursor } from "../es/cursor.ts";
import { START } from "../es/event.ts";
import { type ProjectionStatus, projectionStatus } from "../projection/mod.ts";
import {
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  duration,
  loadModule,
  MODULE_USAGE,
  parseFlags,
  pickProjection,
  printJson,
  runCommand,
  table,
} from "./common.ts";

const USAGE = `Usage: pupsourcing status [NAME] [options]

Where each projection is: its segments, the oldest and newest checkpoint
(transaction id/position), the lag in events and in seconds (the age of the
oldest event not applied yet), parked events, the last handler error, and
with NAME the live members of its consumer group and one line per segment:
its mode (group, static, none), owner, last heartbeat and lease.

The lag counts every event of a projection's segments after its checkpoint;
with --module, only those in the projection's scope.

Options:
${MODULE_USAGE}${COMMON_USAGE}`;

/** The `status` command. */
export const status: Command = {
  name: "status",
  summary: "projections: checkpoints, lag, parked events, owners",
  usage: USAGE,
  run(args, env) {
    const { values, positionals } = parseFlags(args, {
      ...COMMON_FLAGS,
      module: { type: "string" },
    }, { min: 0, max: 1, names: "at most one projection NAME" });
    return runCommand(status, values.help, async (track) => {
      const name = positionals[0];
      const module = values.module === undefined ? undefined : await loadModule(values.module);
      const selected = name === undefined
        ? module && [...module.projections.values()]
        : [module ? pickProjection(module, name, values.module!) : name];
      const { sql, store } = track(connect(values, env));
      // After a move into a new cluster, lags and checkpoints mean nothing
      // until the rebase: the log is checked first, the checkpoints after.
      await store.assertCursorInCluster(sql, START);
      const report = await projectionStatus(sql, store, { projections: selected });
      await store.assertCursorInCluster(
        sql,
        report.reduce((furthest, s) => maxCursor(furthest, s.newestCheckpoint), START),
      );
      if (values.json) printJson(name === undefined ? report : report[0]);
      else process.stdout.write(name === undefined ? overview(report) : detail(report[0]));
      // Without the module, a projection that took every event of its scope
      // still shows the others after its checkpoint as lag.
      if (!values.json && module === undefined && report.some((s) => s.lagEvents > 0n)) {
        process.stderr.write(
          "note: without --module, LAG counts every event after the checkpoints, of any type; " +
            "pass --module FILE to count only each projection's scope\n",
        );
      }
    });
  },
};

function cursor(c: { transactionId: bigint; globalPosition: bigint }): string {
  return `${c.transactionId}/${c.globalPosition}`;
}

function overview(report: readonly ProjectionStatus[]): string {
  if (report.length === 0) return "No projection has run yet.\n";
  return table([
    ["PROJECTION", "SEGMENTS", "OLDEST", "NEWEST", "LAG", "LAG TIME", "PARKED", "LAST ERROR"],
    ...report.map((s) => [
      s.name,
      String(s.segments),
      cursor(s.oldestCheckpoint),
      cursor(s.newestCheckpoint),
      String(s.lagEvents),
      duration(s.lagSeconds),
      String(s.parked),
      s.lastError ? `${s.lastError.at.toISOString()} ${s.lastError.error}` : "-",
    ]),
  ]);
}

function detail(s: ProjectionStatus): string {
  const head = [
    `projection:  ${s.name}`,
    `segments:    ${s.segments}`,
    `checkpoints: ${cursor(s.oldestCheckpoint)} .. ${cursor(s.newestCheckpoint)} ` +
    `(moved ${s.updatedAt.toISOString()})`,
    `lag:         ${s.lagEvents} events, ${duration(s.lagSeconds)}`,
    `parked:      ${s.parked}`,
    `members:     ${
      s.members.length === 0
        ? "-"
        : s.members.map((m) => `${m.memberId} (${m.segments.join(",") || "none"})`).join(", ")
    }`,
    `last error:  ${
      s.lastError
        ? `${s.lastError.at.toISOString()} at position ${s.lastError.globalPosition}: ` +
          s.lastError.error
        : "-"
    }`,
    "",
  ].join("\n");
  return head + "\n" + table([
    ["SEGMENT", "CHECKPOINT", "LAG", "LAG TIME", "MODE", "OWNER", "HEARTBEAT", "LEASE UNTIL"],
    ...s.segmentDetails.map((d) => [
      String(d.segment),
      cursor(d.checkpoint),
      String(d.lagEvents),
      duration(d.lagSeconds),
      d.mode,
      d.ownerId === null ? "-" : `${d.ownerId}${d.live ? "" : " (expired)"}`,
      d.lastHeartbeat?.toISOString() ?? "-",
      d.leaseExpiresAt?.toISOString() ?? "-",
    ]),
  ]);
}
