/**
 * A long-lived database (transaction id epoch 1, ids past 2^32) moved by
 * the real `pg_dump` and `pg_restore` into a fresh cluster: the history
 * would be invisible for about 4.29 billion transactions. Every append,
 * read and processor refuses until the rebase; after it, the projection
 * resumes from its checkpoint and the history stays first.
 *
 * Needs `pg_resetwal`, `pg_dump` and `pg_restore` next to the server's
 * binaries (`PUPSOURCING_PG_BIN`: Debian's PostgreSQL 15, CI's 15 leg);
 * skipped elsewhere, saying so.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type PersistedEvent, ProjectionProcessor } from "../mod.ts";
import { migrate, rebaseLog } from "../src/postgres/mod.ts";
import {
  appendTo,
  appliedBy,
  binariesWith,
  type Cluster,
  createAppliedLog,
  dumpAndRestore,
  ids,
  isRegression,
  moveStore,
  recording,
  SCHEMA,
  startCluster,
  startClusterWithEpoch,
} from "./_clusters.ts";

const TOOLS = ["initdb", "pg_ctl", "pg_resetwal", "pg_dump", "pg_restore"];
const bin = await binariesWith(TOOLS);
const skip = bin
  ? false
  : `needs ${TOOLS.join(", ")} in PUPSOURCING_PG_BIN (Debian's PostgreSQL 15 has them; ` +
    "the embedded packages have only initdb, pg_ctl and postgres)";
if (skip) console.log(`skipped: ${skip}`);

describe("a database with transaction id epoch 1 moved by pg_dump and pg_restore", { skip }, () => {
  const store = moveStore();
  let source: Cluster;
  let target: Cluster;
  let history: PersistedEvent[];

  before(async () => {
    [source, target] = await Promise.all([startClusterWithEpoch(bin!, 1), startCluster()]);
    await migrate(source.sql, { store });
    await createAppliedLog(source.sql);
    history = [];
    for (const id of ["a", "b"]) history.push(...(await appendTo(source.sql, store, id, 3)).events);
    await new ProjectionProcessor(source.sql, store).run(recording("model"), {
      mode: "until_caught_up",
    });
    await dumpAndRestore(bin!, source, target, SCHEMA);
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("refuses until the rebase, then resumes every projection with the history first", async () => {
    assert.ok(history[0].transactionId > 2n ** 32n, `history at ${history[0].transactionId}`);
    await assert.rejects(appendTo(target.sql, store, "new", 1), isRegression, "a new aggregate");
    await assert.rejects(appendTo(target.sql, store, "a", 1), isRegression, "a restored one");
    await assert.rejects(store.readEvents(target.sql), isRegression, "a read");
    await assert.rejects(
      new ProjectionProcessor(target.sql, store).run(recording("model"), {
        mode: "until_caught_up",
      }),
      isRegression,
      "a processor",
    );

    const rebased = await rebaseLog(target.sql, { store });
    assert.equal(rebased.rebased, true);
    assert.ok(rebased.offset > 2n ** 32n - 10_000n, `offset ${rebased.offset}`);

    const fresh = [
      ...(await appendTo(target.sql, store, "new", 1)).events,
      ...(await appendTo(target.sql, store, "a", 1)).events,
    ];
    const log = await store.readEvents(target.sql);
    assert.deepEqual(ids(log), [...ids(history), ...ids(fresh)]);
    assert.deepEqual(
      log.filter((e) => e.aggregateId === "a").map((e) => e.aggregateVersion),
      [1n, 2n, 3n, 4n],
    );
    await new ProjectionProcessor(target.sql, store).run(recording("model"), {
      mode: "until_caught_up",
    });
    assert.deepEqual(await appliedBy(target.sql, "model"), [...ids(history), ...ids(fresh)]);
  });
});
