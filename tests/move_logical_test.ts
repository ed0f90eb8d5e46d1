/**
 * Moving the database into a new cluster by logical replication (a
 * publication on the old cluster, a subscription on the new one), cut
 * over under a running writer: the writer's appends on the new cluster
 * are refused until the rebase, then go on; nothing acknowledged is lost,
 * nothing is repeated, and the projections resume from their replicated
 * checkpoints with the history first.
 *
 * Runs on private clusters of the version under test (`PUPSOURCING_PG_BIN`).
 *
 * @module
 */

import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { type PersistedEvent, ProjectionProcessor } from "../mod.ts";
import { migrate, rebaseLog } from "../src/postgres/mod.ts";
import {
  appendTo,
  appliedBy,
  burnTransactionIds,
  type Cluster,
  createAppliedLog,
  ids,
  isRegression,
  moveStore,
  recording,
  SCHEMA,
  startCluster,
} from "./_clusters.ts";

/** The tables the move publishes: the log, the heads, the checkpoints and the read model. */
const PUBLISHED = ["events", "aggregate_heads", "projection_checkpoints", "applied"];

describe("a database moved into a new cluster by logical replication", () => {
  const store = moveStore();
  let source: Cluster;
  let target: Cluster;

  before(async () => {
    [source, target] = await Promise.all([
      startCluster({ wal_level: "logical" }),
      startCluster(),
    ]);
    for (const cluster of [source, target]) {
      await migrate(cluster.sql, { store });
      await createAppliedLog(cluster.sql);
    }
    await burnTransactionIds(source.sql, 30_000);
  });

  after(async () => {
    // A subscription left by a failed run: detached from its slot, so
    // dropping it does not reach the old cluster.
    if (target) {
      await target.sql.unsafe(`alter subscription move disable;
        alter subscription move set (slot_name = none); drop subscription move`).catch(() => {});
    }
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("cut over under a running writer, then rebased: nothing lost, repeated or reordered", async () => {
    for (const id of ["a", "b"]) await appendTo(source.sql, store, id, 3);
    await new ProjectionProcessor(source.sql, store).run(recording("model"), {
      mode: "until_caught_up",
    });

    await source.sql.unsafe(
      `create publication move for table ${PUBLISHED.map((t) => `${SCHEMA}.${t}`).join(", ")}`,
    );
    await target.sql.unsafe(`create subscription move
      connection 'host=127.0.0.1 port=${source.port} dbname=postgres user=postgres'
      publication move`);

    // The writer: appends to one aggregate and a new one each round, on
    // whichever cluster `writeTo` names; a refusal is retried.
    let writeTo: postgres.Sql = source.sql;
    let stopWriter = false;
    let refusals = 0;
    const acknowledged: PersistedEvent[] = [];
    let onTarget = 0;
    // Set before the rebase is called: an append that waits on its lock
    // succeeds the moment it commits, maybe before the call returns.
    let rebaseBegun = false;
    let beforeRebase = 0;
    const writer = (async () => {
      for (let round = 0; !stopWriter; round++) {
        const sql = writeTo;
        try {
          for (const id of ["w", `w-${round}`]) {
            acknowledged.push(...(await appendTo(sql, store, id, 1)).events);
            if (sql === target.sql) onTarget++;
            if (sql === target.sql && !rebaseBegun) beforeRebase++;
          }
        } catch (error) {
          if (!isRegression(error)) throw error;
          refusals++;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    await waitUntil(
      "the subscription's initial copy",
      async () => {
        const [{ pending }] = await target.sql`
        select count(*)::int as pending from pg_subscription_rel where srsubstate <> 'r'`;
        return pending === 0;
      },
      30_000,
      50,
    );
    await waitUntil("some writes on the old cluster", () => acknowledged.length >= 20, 10_000, 50);
    // The cut-over: the writer moves to the new cluster, where it is refused.
    writeTo = target.sql;
    await waitUntil("a refused append on the new cluster", () => refusals > 0, 10_000, 50);
    await assert.rejects(
      new ProjectionProcessor(target.sql, store).run(recording("model"), {
        mode: "until_caught_up",
      }),
      isRegression,
      "a processor on the new cluster before the rebase",
    );
    const [{ count: sourceCount }] = await source.sql`select count(*)::int from app.events`;
    await waitUntil(
      "the subscriber to apply every event",
      async () => {
        const [{ count }] = await target.sql`select count(*)::int from app.events`;
        return count === sourceCount;
      },
      30_000,
      50,
    );
    await target.sql`drop subscription move`;
    // Logical replication carries no sequences: the read model's own is
    // the application's to move (the rebase moves the log's).
    await target.sql`select setval(pg_get_serial_sequence('app.applied', 'seq'), max(seq))
      from app.applied`;

    rebaseBegun = true;
    const rebased = await rebaseLog(target.sql, { store });
    assert.equal(beforeRebase, 0, "nothing appended on the new cluster before the rebase");
    assert.equal(rebased.rebased, true);
    assert.ok(rebased.positionAdvancedTo !== null, "the position sequence was behind");
    await waitUntil(
      "appends on the new cluster after the rebase",
      () => onTarget >= 10,
      10_000,
      50,
    );
    stopWriter = true;
    await writer;

    // Every acknowledged event is in the new log once; the history first.
    const log = await store.readEvents(target.sql, { limit: 10_000 });
    const history = await store.readEvents(source.sql, { limit: 10_000 });
    assert.deepEqual(ids(log.slice(0, history.length)), ids(history));
    assert.deepEqual(new Set(ids(log)), new Set([...ids(history), ...ids(acknowledged)]));
    assert.equal(new Set(ids(log)).size, log.length, "no event twice");
    const w = log.filter((e) => e.aggregateId === "w").map((e) => e.aggregateVersion);
    assert.deepEqual(w, w.map((_, i) => BigInt(i + 1)), "the aggregate w in order");

    // The projection resumes from its replicated checkpoint.
    const before = await appliedBy(target.sql, "model");
    await new ProjectionProcessor(target.sql, store).run(recording("model"), {
      mode: "until_caught_up",
    });
    assert.deepEqual(await appliedBy(target.sql, "model"), ids(log));
    assert.ok(before.length > 0 && before.length < log.length);
  });
});
