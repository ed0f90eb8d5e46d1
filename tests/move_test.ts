/**
 * Moving the database into a new cluster by dump and restore: the new
 * cluster counts transaction ids from a few hundred while the history
 * carries the old cluster's ids. Until the log is rebased, every append,
 * read and poll refuses (a processor that was running when the database
 * was replaced under its address included); after the rebase every
 * projection resumes from its checkpoint, the history stays first and
 * each aggregate keeps its order.
 *
 * Runs on private clusters of the version under test (`PUPSOURCING_PG_BIN`).
 *
 * @module
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  type Cursor,
  type PersistedEvent,
  type Projection,
  ProjectionProcessor,
  TransactionIdRegressionError,
} from "../mod.ts";
import { migrate, PostgresStore, rebaseLog } from "../src/postgres/mod.ts";
import {
  burnTransactionIds,
  type Cluster,
  copySchema,
  nextTransactionId,
  startCluster,
  SwitchingProxy,
} from "./_clusters.ts";
import { json } from "./_db.ts";

const SCHEMA = "app";
/** How far the old cluster's ids are pushed above a fresh cluster's. */
const BURNED = 30_000;

/**
 * A read model that records every application in order: `seq` is the
 * order of application, so a repeat or a reordering shows.
 */
async function createLog(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`create table ${SCHEMA}.applied (
    seq bigserial primary key, projection text not null, event_id uuid not null,
    aggregate_id text not null, aggregate_version bigint not null)`);
}

function recording(name: string): Projection {
  return {
    name,
    async handle(event, tx) {
      await tx.unsafe(
        `insert into ${SCHEMA}.applied (projection, event_id, aggregate_id, aggregate_version)
         values ($1, $2, $3, $4)`,
        [name, event.eventId, event.aggregateId, String(event.aggregateVersion)],
      );
    },
  };
}

async function appliedBy(sql: postgres.Sql, name: string): Promise<string[]> {
  const rows = await sql`select event_id from ${sql(`${SCHEMA}.applied`)}
    where projection = ${name} order by seq`;
  return rows.map((r) => r.event_id);
}

function append(sql: postgres.Sql, store: PostgresStore, id: string, n: number) {
  return store.append(
    sql,
    Array.from({ length: n }, (_, i) => ({
      aggregateType: "Account",
      aggregateId: id,
      eventType: "Deposited",
      payload: json({ i }),
    })),
  );
}

/** Waits until `check` holds, or fails naming `what` after `ms`. */
async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isRegression(error: unknown): boolean {
  return error instanceof TransactionIdRegressionError && /rebase/.test(error.message);
}

describe("a database moved into a new cluster by dump and restore", () => {
  const store = new PostgresStore({ schema: SCHEMA });
  let source: Cluster;
  let target: Cluster;
  let proxy: SwitchingProxy;
  let history: PersistedEvent[];
  let lastCursor: Cursor;
  let live: { done: Promise<unknown>; controller: AbortController };

  before(async () => {
    [source, target] = await Promise.all([startCluster(), startCluster()]);
    await migrate(source.sql, { store });
    await createLog(source.sql);
    await burnTransactionIds(source.sql, BURNED);
    history = [];
    for (const id of ["a", "b", "c"]) {
      history.push(...(await append(source.sql, store, id, 4)).events);
    }
    const last = history[history.length - 1];
    lastCursor = { transactionId: last.transactionId, globalPosition: last.globalPosition };
    await new ProjectionProcessor(source.sql, store).run(recording("model"), {
      mode: "until_caught_up",
    });
    // A processor that keeps running through the move, reaching the
    // database through an address that is switched to the new cluster.
    proxy = new SwitchingProxy(source.port);
    await proxy.listen();
    const controller = new AbortController();
    live = { done: runLive(controller), controller };
    await waitFor(
      "the live projection to apply the history",
      20_000,
      async () => (await appliedBy(source.sql, "live")).length === history.length,
    );

    // The restore: the schema first, then the rows and the sequences.
    await migrate(target.sql, { store });
    await createLog(target.sql);
    await copySchema(source.sql, target.sql, SCHEMA);
    proxy.switchTo(target.port);
  });

  function runLive(controller: AbortController): Promise<unknown> {
    const sql = sourceClientThroughProxy();
    return new ProjectionProcessor(sql, store, { pollInterval: 20, maxPollInterval: 200 })
      .run(recording("live"), { signal: controller.signal })
      .then((outcome) => outcome, (error) => error);
  }

  function sourceClientThroughProxy(): postgres.Sql {
    // A client of the source cluster's kind, pointed at the proxy.
    return source.client({ host: "127.0.0.1", port: proxy.port });
  }

  after(async () => {
    live?.controller.abort();
    await live?.done;
    await proxy?.close();
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("starts from ids well above the new cluster's", async () => {
    assert.ok(
      lastCursor.transactionId > (await nextTransactionId(target.sql)) + BigInt(BURNED / 2),
      `history at ${lastCursor.transactionId}, new cluster at ${await nextTransactionId(
        target.sql,
      )}`,
    );
  });

  it("refuses every append, read and poll until the rebase", async () => {
    const counts = async () =>
      (await target.sql`select (select count(*)::int from app.events) as events,
        (select count(*)::int from app.applied) as applied,
        (select string_agg(transaction_id::text || '/' || global_position, ',' order by projection_name, segment)
         from app.projection_checkpoints) as checkpoints`)[0];
    const before = await counts();
    await assert.rejects(
      append(target.sql, store, "new", 1),
      isRegression,
      "append, new aggregate",
    );
    await assert.rejects(
      append(target.sql, store, "a", 1),
      isRegression,
      "append, restored aggregate",
    );
    await assert.rejects(store.readEvents(target.sql), isRegression, "read from the start");
    await assert.rejects(
      store.readEvents(target.sql, { after: lastCursor }),
      isRegression,
      "read after the last event",
    );
    for (const name of ["model", "fresh"]) {
      await assert.rejects(
        new ProjectionProcessor(target.sql, store).run(recording(name), {
          mode: "until_caught_up",
        }),
        isRegression,
        `processor ${name}`,
      );
    }
    assert.deepEqual(await counts(), before, "nothing appended, applied or checkpointed");
  });

  it("stops a processor that was running when the database was replaced under it", async () => {
    const outcome = await Promise.race([
      live.done,
      new Promise((resolve) => setTimeout(() => resolve("still running after 20 s"), 20_000)),
    ]);
    assert.ok(isRegression(outcome), `live processor ended with ${String(outcome)}`);
  });

  it("after the rebase, resumes every projection from its checkpoint, history first", async () => {
    const rebased = await rebaseLog(target.sql, { store });
    assert.equal(rebased.rebased, true);
    assert.equal(
      (await rebaseLog(target.sql, { store })).rebased,
      false,
      "a second run is a no-op",
    );

    const fresh = [
      ...(await append(target.sql, store, "new", 2)).events,
      ...(await store.append(target.sql, [{
        aggregateType: "Account",
        aggregateId: "a",
        eventType: "Deposited",
        payload: json({ i: 4 }),
      }], { expectedVersion: 4n })).events,
    ];
    const ids = (events: PersistedEvent[]) => events.map((e) => e.eventId);

    // (c) the log from the start: the history, then the new events.
    const log = await store.readEvents(target.sql, { limit: 100 });
    assert.deepEqual(ids(log), [...ids(history), ...ids(fresh)]);
    const versionsOfA = log.filter((e) => e.aggregateId === "a").map((e) => e.aggregateVersion);
    assert.deepEqual(versionsOfA, [1n, 2n, 3n, 4n, 5n]);
    // Reads after the old cursor return exactly the new events.
    assert.deepEqual(ids(await store.readEvents(target.sql, { after: lastCursor })), ids(fresh));

    // (b) each projection applies exactly what it had not, once, in order.
    for (const name of ["model", "live"]) {
      await new ProjectionProcessor(target.sql, store).run(recording(name), {
        mode: "until_caught_up",
      });
      assert.deepEqual(await appliedBy(target.sql, name), [...ids(history), ...ids(fresh)], name);
    }
    await new ProjectionProcessor(target.sql, store).run(recording("fresh"), {
      mode: "until_caught_up",
    });
    assert.deepEqual(await appliedBy(target.sql, "fresh"), ids(log), "a new projection");
  });
});
