/**
 * A physical standby promoted under load needs no rebase: it is the same
 * cluster, replayed from its WAL, with the same transaction ids. A writer
 * and a running processor reach the database through one address, which
 * is switched from the stopped primary to the promoted standby: every
 * acknowledged event is there, and the projection applies every event of
 * the log exactly once, each aggregate in order, with no refusal.
 *
 * Needs `pg_basebackup` next to the server's binaries
 * (`PUPSOURCING_PG_BIN`: Debian's PostgreSQL 15, CI's 15 leg); skipped
 * elsewhere, saying so.
 *
 * @module
 */

import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type PersistedEvent, ProjectionProcessor } from "../mod.ts";
import { migrate, rebaseLog } from "../src/postgres/mod.ts";
import {
  appendTo,
  appliedBy,
  binariesWith,
  createAppliedLog,
  ids,
  type ManagedCluster,
  moveStore,
  recording,
  startClusterWithEpoch,
  startStandby,
  SwitchingProxy,
} from "./_clusters.ts";

const TOOLS = ["initdb", "pg_ctl", "pg_basebackup"];
const bin = await binariesWith(TOOLS);
const skip = bin
  ? false
  : `needs ${TOOLS.join(", ")} in PUPSOURCING_PG_BIN (Debian's PostgreSQL 15 has them; ` +
    "the embedded packages have only initdb, pg_ctl and postgres)";
if (skip) console.log(`skipped: ${skip}`);

describe("a physical standby promoted under load", { skip }, () => {
  const store = moveStore();
  let primary: ManagedCluster;
  let standby: ManagedCluster;
  let proxy: SwitchingProxy;

  before(async () => {
    primary = await startClusterWithEpoch(bin!, 0);
    await migrate(primary.sql, { store });
    await createAppliedLog(primary.sql);
    standby = await startStandby(bin!, primary);
    proxy = new SwitchingProxy(primary.port);
    await proxy.listen();
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([primary?.stop(), standby?.stop()]);
  });

  it("needs no rebase, and the projection loses and repeats nothing", async () => {
    const writes = primary.client({ host: "127.0.0.1", port: proxy.port, max: 1 });
    const reads = primary.client({ host: "127.0.0.1", port: proxy.port });
    const controller = new AbortController();
    const running = new ProjectionProcessor(reads, store, {
      pollInterval: 10,
      maxPollInterval: 100,
    })
      .run(recording("model"), { signal: controller.signal })
      .then((outcome) => outcome, (error) => error);

    let stop = false;
    const acknowledged: PersistedEvent[] = [];
    let switched = false;
    let afterSwitch = 0;
    const writer = (async () => {
      for (let round = 0; !stop; round++) {
        try {
          for (const id of ["w", `p-${round}`]) {
            acknowledged.push(...(await appendTo(writes, store, id, 1)).events);
            if (switched) afterSwitch++;
          }
        } catch {
          // The primary went away: the append may or may not have committed.
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    })();

    await waitUntil("writes on the primary", () => acknowledged.length >= 40, 10_000, 50);
    await primary.stopFast();
    await standby.promote();
    proxy.switchTo(standby.port);
    switched = true;
    await waitUntil("writes on the promoted standby", () => afterSwitch >= 20, 20_000, 50);
    stop = true;
    await writer;

    // The last events become readable once the processor's open batch,
    // which holds the horizon, has ended.
    let log: PersistedEvent[] = [];
    const missing = () => {
      const stored = new Set(ids(log));
      return ids(acknowledged).filter((id) => !stored.has(id));
    };
    await waitUntil(
      "every acknowledged event in the promoted standby's log",
      async () => {
        log = await store.readEvents(standby.sql, { limit: 100_000 });
        return missing().length === 0;
      },
      20_000,
      50,
    ).catch((error) => {
      throw new Error(`${error.message}; missing: ${missing().join(", ")}`);
    });
    await waitUntil(
      "the projection to apply the whole log",
      async () => (await appliedBy(standby.sql, "model")).length >= log.length,
      20_000,
      50,
    );
    controller.abort();
    const outcome = await running;
    assert.ok(!(outcome instanceof Error), `the processor stopped with ${outcome}`);

    const applied = await appliedBy(standby.sql, "model");
    assert.deepEqual(applied, ids(log), "every event once, in log order");
    assert.equal((await rebaseLog(standby.sql, { store })).rebased, false, "no rebase needed");
  });
});
