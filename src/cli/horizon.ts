/**
 * `pupsourcing horizon`: what holds the safe horizon back (pid,
 * application, transaction age, query) and how many committed events wait
 * behind it (see `PostgresStore.inspectHorizon`).
 *
 * @module
 */

import process from "node:process";
import { START } from "../es/event.ts";
import {
  type Command,
  COMMON_FLAGS,
  COMMON_USAGE,
  connect,
  duration,
  parseFlags,
  printJson,
  runCommand,
  table,
} from "./common.ts";

const USAGE = `Usage: pupsourcing horizon [options]

Projections read the log only below the safe horizon: the oldest transaction
still running anywhere in the cluster. This shows that horizon, how many
committed events wait behind it, and the writing transactions that hold it,
oldest first (end one with: select pg_terminate_backend(<pid>)).

Options:
${COMMON_USAGE}`;

/** The `horizon` command. */
export const horizon: Command = {
  name: "horizon",
  summary: "what holds the projections back: open transactions, waiting events",
  usage: USAGE,
  run(args, env) {
    const { values } = parseFlags(args, COMMON_FLAGS, { min: 0, max: 0, names: "" });
    return runCommand(horizon, values.help, async (track) => {
      const { sql, store } = track(connect(values, env));
      // After a move into a new cluster, every event waits behind the horizon until the rebase.
      await store.assertCursorInCluster(sql, START);
      const report = await store.inspectHorizon(sql);
      const now = Date.now();
      const blockers = report.blockers.map((b) => ({
        ...b,
        transactionAgeSeconds: b.transactionStartedAt
          ? Math.max(0, (now - b.transactionStartedAt.getTime()) / 1000)
          : null,
      }));
      if (values.json) {
        printJson({ ...report, blockers });
        return;
      }
      process.stdout.write(
        `horizon:        ${report.horizon}\npending events: ${report.pendingEvents}\n`,
      );
      if (blockers.length === 0) {
        process.stdout.write("blockers:       none (no writing transaction is open)\n");
        return;
      }
      process.stdout.write(
        "\n" + table([
          ["PID", "STATE", "AGE", "XID AGE", "APPLICATION", "QUERY"],
          ...blockers.map((b) => [
            b.pid === null ? "-" : String(b.pid),
            b.state,
            b.transactionAgeSeconds === null ? "?" : duration(b.transactionAgeSeconds),
            String(b.xidAge),
            b.applicationName || "-",
            b.query.replace(/\s+/g, " ").slice(0, 60),
          ]),
        ]),
      );
    });
  },
};
