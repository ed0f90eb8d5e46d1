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

import { after, before, describe, it, waitUntil, within } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { type Cursor, type PersistedEvent, ProjectionProcessor, ValidationError } from "../mod.ts";
import { migrate, rebaseLog } from "../src/postgres/mod.ts";
import { migrateMain } from "../src/migrate.ts";
import { status } from "../src/cli/status.ts";
import { horizon } from "../src/cli/horizon.ts";
import { captureCli } from "./_cli.ts";
import {
  appendTo as append,
  appliedBy,
  burnTransactionIds,
  type Cluster,
  copySchema,
  createAppliedLog as createLog,
  ids,
  isRegression,
  moveStore,
  nextTransactionId,
  recording,
  SCHEMA,
  startCluster,
  SwitchingProxy,
} from "./_clusters.ts";

/** How far the old cluster's ids are pushed above a fresh cluster's. */
const BURNED = 30_000;

describe("a database moved into a new cluster by dump and restore", () => {
  const store = moveStore();
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
    await waitUntil(
      "the live projection to apply the history",
      async () => (await appliedBy(source.sql, "live")).length === history.length,
      20_000,
      50,
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
    // The commands say so too: migrate without --rebase, status and horizon.
    const migrated = await captureCli(() =>
      migrateMain(["--database-url", target.url, "--schema", SCHEMA])
    );
    assert.equal(migrated.code, 1, migrated.stderr);
    assert.match(migrated.stdout, /the schema is up to date/);
    assert.match(migrated.stderr, /^migrate: .*needs a rebase.*--rebase/);
    const asJson = await captureCli(() =>
      migrateMain(["--database-url", target.url, "--schema", SCHEMA, "--json"])
    );
    assert.equal(asJson.code, 1, asJson.stderr);
    assert.match(JSON.parse(asJson.stdout).rebaseNeeded, /moved into a new cluster/);
    // The database it came from, history and all, is sound.
    const sound = await captureCli(() =>
      migrateMain(["--database-url", source.url, "--schema", SCHEMA])
    );
    assert.equal(sound.code, 0, sound.stderr);
    for (const command of [status, horizon]) {
      const refused = await captureCli(() =>
        command.run(["--database-url", target.url, "--schema", SCHEMA], {})
      );
      assert.equal(refused.code, 1, `${command.name}: ${refused.stderr}`);
      assert.match(refused.stderr, /moved into a new cluster.*--rebase/, command.name);
      assert.equal(refused.stdout, "", command.name);
    }
    assert.deepEqual(await counts(), before, "nothing appended, applied or checkpointed");
  });

  it("stops a processor that was running when the database was replaced under it", async () => {
    const outcome = await within(live.done, 20_000, "the running processor to stop");
    assert.ok(isRegression(outcome), `live processor ended with ${String(outcome)}`);
  });

  it("refuses bad rebase input before any SQL", async () => {
    const nowhere = source.client({ host: "127.0.0.1", port: 1, max: 1, connect_timeout: 1 });
    const refused = (field: string) => (e: unknown) =>
      e instanceof ValidationError && e.field === field;
    // deno-lint-ignore no-explicit-any -- deliberately wrong input
    const wrong = (value: unknown) => value as any;
    await assert.rejects(rebaseLog(nowhere, wrong({ stroe: store })), refused("options.stroe"));
    await assert.rejects(rebaseLog(nowhere, { store: wrong({}) }), refused("options.store"));
    await assert.rejects(rebaseLog(wrong("postgres://x"), { store }), refused("sql"));
    const dry = await captureCli(() =>
      migrateMain(["--database-url", target.url, "--rebase", "--dry-run"])
    );
    assert.equal(dry.code, 2);
    assert.match(dry.stderr, /--rebase cannot be combined with --dry-run/);
  });

  it("after the rebase, resumes every projection from its checkpoint, history first", async () => {
    const command = await captureCli(() =>
      migrateMain(["--database-url", target.url, "--schema", SCHEMA, "--rebase"])
    );
    assert.equal(command.code, 0, command.stderr);
    assert.match(
      command.stdout,
      new RegExp(`Rebased the log: new events follow transaction id ${lastCursor.transactionId} `),
    );
    const again = await rebaseLog(target.sql, { store });
    assert.equal(again.rebased, false, "a second run is a no-op");
    assert.equal(again.newestTransactionId, lastCursor.transactionId);

    const fresh = [
      ...(await append(target.sql, store, "new", 2)).events,
      ...(await append(target.sql, store, "a", 1)).events,
    ];

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
