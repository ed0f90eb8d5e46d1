/**
 * PostgreSQL crashes (immediate-mode restarts: every backend killed at
 * once, crash recovery at start-up) under concurrent writers and
 * projection workers. Writers retry each append with the same event ids
 * and the same expected version until it succeeds, as an application
 * should; the store turns a retry of an append that did commit into its
 * original result. Afterwards nothing may be lost, duplicated, applied
 * twice or out of version order.
 *
 * The cluster is a private one (see `_cluster.ts`), whatever
 * `DATABASE_URL` says: a shared server cannot be crashed.
 */

import { after, before, describe, it, waitUntil, within } from "./_bounds.ts";
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  DuplicateEventError,
  type Event,
  OptimisticConcurrencyError,
  uuidv7,
  ValidationError,
} from "../src/es/mod.ts";
import { generateMigration } from "../src/migrate_gen.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { type RestartableCluster, startRestartableCluster } from "./_cluster.ts";
import { json } from "./_db.ts";
import { appliedTimes, createReadModel, readModelProjection } from "./_projection.ts";

const WRITERS = 6;
const AGGREGATES_PER_WRITER = 3;
const RESTARTS = 3;

/**
 * The client settings docs/event-store.md recommends for quick recovery:
 * postgres.js reconnects after `backoff(retries)` seconds, `retries`
 * growing with every failed connection attempt of the client, and its
 * default (up to 20 s) would make the test wait for nothing; a connection
 * attempt caught in a restart can hang until `connect_timeout` (30 s by
 * default).
 */
const RECOVERY: postgres.Options<Record<string, never>> = {
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
  connect_timeout: 2,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("PostgreSQL restarts in immediate mode", () => {
  let cluster: RestartableCluster;
  let url: string;
  const clients: postgres.Sql[] = [];
  const client = (options: postgres.Options<Record<string, never>> = {}) => {
    // fetch_types: false keeps clear of porsager/postgres#1192 (a connection
    // lost while it fetches array types rejects out of reach: the process
    // dies); the store and the processor need no array types.
    const sql = postgres(url, { onnotice: () => {}, ...RECOVERY, fetch_types: false, ...options });
    clients.push(sql);
    return sql;
  };
  before(async () => {
    cluster = await startRestartableCluster();
    url = await cluster.createDatabase();
  });
  after(async () => {
    await Promise.all(clients.map((sql) => sql.end({ timeout: 1 })));
    await cluster?.stop();
  });

  it("loses, duplicates and reapplies nothing, and keeps versions contiguous", async () => {
    const schema = "restarts";
    const store = new PostgresStore({ schema });
    const admin = client({ max: 1 });
    await admin.unsafe(generateMigration({ schema }));
    await createReadModel(admin, store);

    const writer = client({ max: WRITERS });
    /** Event ids acknowledged by a successful append, with the version it returned. */
    const acknowledged = new Map<string, { aggregateId: string; version: bigint }>();
    const versions = new Map<string, bigint>();
    let failedAttempts = 0;
    let writing = true;

    /** Appends `events` at `expected` until it succeeds, with the same ids every time. */
    const appendUntilStored = async (events: Event[], expected: bigint) => {
      const deadline = performance.now() + 30_000;
      for (;;) {
        try {
          return await store.append(writer, events, { expectedVersion: expected });
        } catch (error) {
          // A retry of an append that committed is answered with its
          // original result; anything else means the store got it wrong.
          if (
            error instanceof OptimisticConcurrencyError || error instanceof DuplicateEventError ||
            error instanceof ValidationError
          ) throw error;
          failedAttempts++;
          if (performance.now() > deadline) {
            throw new Error(`an append still failed 30 s after its first attempt: ${error}`);
          }
          await sleep(20);
        }
      }
    };

    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let round = 0; writing; round++) {
        const aggregateId = `w${w}-a${round % AGGREGATES_PER_WRITER}`;
        const expected = versions.get(aggregateId) ?? 0n;
        const events = Array.from({ length: 1 + (round % 2) }, (_, i) => ({
          aggregateType: "Account",
          aggregateId,
          eventType: "Deposited",
          eventId: uuidv7(),
          payload: json({ w, round, i }),
        }));
        const result = await appendUntilStored(events, expected);
        assert.equal(result.fromVersion, expected, `${aggregateId}: appended after ${expected}`);
        assert.deepEqual(
          result.events.map((e) => e.eventId),
          events.map((e) => e.eventId),
          `${aggregateId}: the stored events are the ones sent`,
        );
        for (const e of result.events) {
          acknowledged.set(e.eventId, { aggregateId, version: e.aggregateVersion });
        }
        versions.set(aggregateId, result.toVersion);
      }
    });

    const controller = new AbortController();
    const workers = [0, 1].map((partitionKey) =>
      new ProjectionProcessor(client({ max: 2 }), store, {
        partitionKey,
        totalPartitions: 2,
        batchSize: 20,
        pollInterval: 20,
        maxPollInterval: 500,
      }).run(readModelProjection(store, "restarted"), { signal: controller.signal })
    );
    // A worker that stops early (a non-transient error) fails the test at once.
    const stoppedEarly = Promise.race(workers.map((run, i) =>
      run.then(() => {
        if (!controller.signal.aborted) throw new Error(`worker ${i} stopped before the abort`);
      })
    ));
    stoppedEarly.catch(() => {});

    const restarts = (async () => {
      for (let r = 0; r < RESTARTS; r++) {
        await sleep(700);
        const before = acknowledged.size;
        await cluster.restartImmediate();
        // Writers and workers are back before the next crash.
        await waitUntil(
          `appends to resume after restart ${r + 1}`,
          () => acknowledged.size > before,
          15_000,
        );
      }
      await sleep(300);
      writing = false;
    })();
    await within(
      Promise.race([Promise.all([restarts, ...writers]), stoppedEarly]),
      40_000,
      `${RESTARTS} restarts under ${WRITERS} writers`,
    );
    assert.ok(failedAttempts > 0, "the restarts made some appends fail and retry");

    // Every acknowledged event is in the log once; the log holds nothing else.
    const log = await admin.unsafe(
      `select event_id, aggregate_id, aggregate_version::text as version
       from ${store.tables.events} order by aggregate_id, aggregate_version`,
    );
    assert.equal(log.length, acknowledged.size, "as many events stored as acknowledged");
    for (const row of log) {
      const ack = acknowledged.get(row.event_id);
      assert.ok(ack, `event ${row.event_id} stored but never acknowledged`);
      assert.deepEqual([row.aggregate_id, BigInt(row.version)], [ack.aggregateId, ack.version]);
    }
    // Versions 1..n per aggregate, n the head's version and the writer's count.
    const byAggregate = new Map<string, bigint[]>();
    for (const row of log) {
      byAggregate.set(row.aggregate_id, [
        ...byAggregate.get(row.aggregate_id) ?? [],
        BigInt(row.version),
      ]);
    }
    const heads = await admin.unsafe(
      `select aggregate_id, aggregate_version::text as version from ${store.tables.aggregateHeads}`,
    );
    assert.equal(heads.length, versions.size);
    for (const head of heads) {
      const stored = byAggregate.get(head.aggregate_id) ?? [];
      const n = versions.get(head.aggregate_id);
      assert.equal(BigInt(head.version), n, `${head.aggregate_id}: head version`);
      assert.deepEqual(
        stored,
        Array.from({ length: Number(n) }, (_, i) => BigInt(i + 1)),
        `${head.aggregate_id}: versions contiguous from 1`,
      );
    }

    // The workers apply every event exactly once.
    await within(
      Promise.race([
        waitUntil(
          "the workers to apply every stored event",
          async () => (await appliedTimes(admin, store)).size === log.length,
          20_000,
        ),
        stoppedEarly,
      ]),
      25_000,
      "the workers to catch up",
    );
    controller.abort();
    await within(Promise.all(workers), 10_000, "the workers to stop after the abort");
    const applied = await appliedTimes(admin, store);
    assert.deepEqual(
      [...applied.keys()].sort(),
      log.map((row) => row.event_id as string).sort(),
    );
    const twice = [...applied].filter(([, times]) => times !== 1);
    assert.deepEqual(twice, [], "no event applied twice");
  });
});
