import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import process from "node:process";
import { setTimeout as delay } from "node:timers/promises";
import postgres from "postgres";
import { type PersistedEvent, ProjectionError, ValidationError } from "../src/es/mod.ts";
import type { LogFields, Logger } from "../src/es/logger.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { isConnectionLoss } from "../src/postgres/connection_loss.ts";
import { isTransientDatabaseError } from "../src/projection/transient.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appendEvents,
  appliedTimes,
  caughtUp,
  createReadModel,
  deferred,
  readModelProjection,
  waitUntil,
  within,
} from "./_projection.ts";

const RETRY = "projection processor database error, retrying";

/** A logger that keeps the retries it is told about. */
function retryLog(): { logger: Logger; retries: LogFields[] } {
  const retries: LogFields[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    error(message: string, fields?: LogFields) {
      if (message === RETRY) retries.push(fields ?? {});
    },
  };
  return { logger, retries };
}

function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  return waitUntil(what, check, 20_000, 5);
}

describe("projection processor during database outages", () => {
  let db: TestDb;
  let apps = 0;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /**
   * A client of one connection, plus the LISTEN's, both with their own
   * application_name, and the number of times its connection has closed.
   */
  const processorClient = (): { sql: postgres.Sql; app: string; closes: () => number } => {
    const app = `outage_${process.pid}_${apps++}`;
    let closes = 0;
    const sql = db.client({
      max: 1,
      connection: { application_name: app },
      // See docs/projections.md, "When the database goes away".
      fetch_types: false,
      onclose: () => closes++,
    });
    return { sql, app, closes: () => closes };
  };

  /** Terminates the client's backends; returns their pids. */
  const terminate = async (app: string): Promise<number[]> => {
    const rows = await db.sql`
      select pid, pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and application_name = ${app}`;
    return rows.map((row) => row.pid as number);
  };

  /** Waits until the server has none of `pids` left. */
  const gone = (pids: number[]): Promise<void> =>
    until(async () => {
      const [{ n }] = await db.sql`
        select count(*)::int as n from pg_stat_activity where pid in ${db.sql(pids)}`;
      return n === 0;
    }, `backends ${pids} gone`);

  /**
   * The read model projection, with a handler that stops inside its batch
   * on the first delivery of aggregate `gated-0`'s first event, then writes.
   */
  const gatedProjection = (store: PostgresStore, name: string) => {
    const entered = deferred();
    const gate = deferred();
    let gatedCalls = 0;
    const base = readModelProjection(store, name);
    const projection = {
      ...base,
      async handle(event: PersistedEvent, tx: postgres.TransactionSql) {
        if (event.aggregateId === "gated-0" && ++gatedCalls === 1) {
          entered.resolve();
          await gate.promise;
        }
        await base.handle(event, tx);
      },
    };
    return { projection, entered, gate, gatedCalls: () => gatedCalls };
  };

  it("applies every event exactly once while its connections are killed again and again", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const { sql, app, closes } = processorClient();
    const { logger, retries } = retryLog();
    const { projection, entered, gate, gatedCalls } = gatedProjection(store, "outage");
    const processor = new ProjectionProcessor(sql, store, {
      batchSize: 7,
      pollInterval: 10,
      maxPollInterval: 80,
      logger,
    });
    const all: PersistedEvent[] = await appendEvents(db.sql, store, {
      prefix: "first",
      aggregates: 5,
      perAggregate: 4,
    });
    const controller = new AbortController();
    let settled = false;
    const running = processor.run(projection, { signal: controller.signal })
      .finally(() => settled = true);

    // A handler is inside its batch (its write done, not yet returned)
    // when every connection of the processor is killed.
    const gated = await appendEvents(db.sql, store, {
      prefix: "gated",
      aggregates: 1,
      perAggregate: 1,
    });
    all.push(...gated);
    await within(entered.promise, 20_000, "the gated handler was called");
    const pids = await terminate(app);
    assert.ok(pids.length > 0);
    await gone(pids);
    // The handler goes on only once the processor's client has seen its
    // connection close: its write must then be refused, not sent anywhere.
    await until(() => closes() === 1, "the client saw its connection close");
    gate.resolve();
    await until(() => retries.length > 0, "a retry was logged");
    assert.equal(retries[0].projection, "outage");
    assert.equal(retries[0].attempt, 1);
    assert.equal(retries[0].delayMs, 10);
    assert.ok(isTransientDatabaseError(retries[0].error), String(retries[0].error));
    // The retry commits the gated event before the next kills, which could
    // otherwise cut that retry too (a third delivery, still applied once).
    await until(
      async () => (await appliedTimes(db.sql, store)).has(gated[0].eventId),
      "the retry to commit the gated event",
    );

    // Then kills while events keep coming.
    let killed = 0;
    for (let round = 0; round < 8; round++) {
      all.push(
        ...await appendEvents(db.sql, store, {
          prefix: `r${round}`,
          aggregates: 4,
          perAggregate: 3,
        }),
      );
      await delay(5 + round * 7);
      killed += (await terminate(app)).length;
    }
    assert.ok(killed > 0);
    await until(async () => (await appliedTimes(db.sql, store)).size === all.length, "caught up");

    const times = await appliedTimes(db.sql, store);
    assert.equal(times.size, all.length);
    assert.deepEqual(new Set(times.keys()), new Set(all.map((e) => e.eventId)));
    assert.deepEqual([...new Set(times.values())], [1]);
    // The gated event's first delivery died with its connection; the retry committed it.
    assert.equal(gatedCalls(), 2);
    assert.equal(settled, false, "run() is still running");
    controller.abort();
    await within(running, 5_000, "run() resolved after the abort");
  });

  it("rejects with the connection error when retryTransientErrors is false", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const { sql, app, closes } = processorClient();
    const { logger, retries } = retryLog();
    const { projection, entered, gate } = gatedProjection(store, "fail_fast");
    await appendEvents(db.sql, store, { prefix: "gated", aggregates: 1, perAggregate: 2 });
    const processor = new ProjectionProcessor(sql, store, {
      pollInterval: 10,
      retryTransientErrors: false,
      logger,
    });
    assert.equal(processor.config.retryTransientErrors, false);
    const running = processor.run(projection, { signal: AbortSignal.timeout(20_000) });
    await within(entered.promise, 20_000, "the gated handler was called");
    await gone(await terminate(app));
    await until(() => closes() === 1, "the client saw its connection close");
    gate.resolve();
    const error = await within(running.then(() => undefined, (e) => e), 20_000, "run() settled");
    assert.ok(!(error instanceof ProjectionError), String(error));
    assert.equal(error.code, "CONNECTION_CLOSED");
    assert.equal(retries.length, 0);
    assert.equal((await appliedTimes(db.sql, store)).size, 0);
  });

  it("retries a lost batch only once its running handler has returned, and calls no handler on it after", async () => {
    const store = await db.freshStore();
    await createReadModel(db.sql, store);
    const { sql, app, closes } = processorClient();
    const { logger, retries } = retryLog();
    // Two events of one aggregate, read in one batch: the first is gated.
    const [first, second] = await appendEvents(db.sql, store, {
      prefix: "gated",
      aggregates: 1,
      perAggregate: 2,
    });
    // The first delivery of the first event writes, then waits at the gate
    // while the connection is killed: it returns normally, on a lost batch.
    const base = readModelProjection(store, "overlap");
    const entered = deferred();
    const gate = deferred();
    const calls = new Map<string, number>();
    let running = 0;
    let mostRunning = 0;
    const projection = {
      ...base,
      async handle(event: PersistedEvent, tx: postgres.TransactionSql) {
        const call = (calls.get(event.eventId) ?? 0) + 1;
        calls.set(event.eventId, call);
        mostRunning = Math.max(mostRunning, ++running);
        try {
          await base.handle(event, tx);
          if (event.eventId === first.eventId && call === 1) {
            entered.resolve();
            await gate.promise;
          }
        } finally {
          running--;
        }
      },
    };
    const processor = new ProjectionProcessor(sql, store, {
      pollInterval: 10,
      maxPollInterval: 20,
      logger,
    });
    const controller = new AbortController();
    const run = processor.run(projection, { signal: controller.signal });
    await within(entered.promise, 20_000, "the gated handler was called");
    await gone(await terminate(app));
    await until(() => closes() === 1, "the client saw its connection close");
    // Time for a retry to start next to the handler, were it not waited for.
    await delay(300);
    gate.resolve();
    await until(async () => (await appliedTimes(db.sql, store)).size === 2, "caught up");
    controller.abort();
    assert.ok(retries.length > 0);
    await within(run, 5_000, "run() resolved after the abort");
    assert.equal(mostRunning, 1, "a handler ran next to the lost batch's handler");
    // The first event: the lost batch's call and the retry's; the second
    // only in the retry, never on the lost batch's dead transaction.
    assert.deepEqual([calls.get(first.eventId), calls.get(second.eventId)], [2, 1]);
    assert.deepEqual([...new Set((await appliedTimes(db.sql, store)).values())], [1]);
  });

  it("does not retry a handler's own error", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 1 });
    const { logger, retries } = retryLog();
    let calls = 0;
    const processor = new ProjectionProcessor(db.sql, store, { pollInterval: 10, logger });
    await assert.rejects(
      processor.run({
        name: "own_error",
        handle() {
          calls++;
          throw Object.assign(new Error("no"), { code: "23505" });
        },
      }, { signal: AbortSignal.timeout(20_000) }),
      (error) => error instanceof ProjectionError && (error.cause as Error).message === "no",
    );
    assert.equal(calls, 1);
    assert.equal(retries.length, 0);
  });

  it("retries a handler's own connection-like error without hanging on its live transaction", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 1, perAggregate: 1 });
    const { logger, retries } = retryLog();
    let calls = 0;
    const processor = new ProjectionProcessor(db.sql, store, { pollInterval: 10, logger });
    await caughtUp(processor.run({
      name: "external_refused",
      async handle(_event, tx) {
        await tx`select 1`;
        // As from a call to some other service: the transaction is fine.
        if (++calls === 1) throw Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
      },
    }, { mode: "until_caught_up" }));
    assert.equal(calls, 2);
    assert.equal(retries.length, 1);
    assert.ok(retries[0].error instanceof ProjectionError);
  });

  it("waits for a database it cannot reach at startup, until aborted", async () => {
    const store = await db.freshStore();
    const { port } = new URL(db.url);
    // Nothing listens on port 1: every connection attempt is refused.
    const sql = db.client({ connect_timeout: 2 }, db.url.replace(`:${port}/`, ":1/"));
    const { logger, retries } = retryLog();
    const processor = new ProjectionProcessor(sql, store, {
      pollInterval: 5,
      maxPollInterval: 20,
      logger,
    });
    const controller = new AbortController();
    const running = processor.run(readModelProjection(store, "unreachable"), {
      signal: controller.signal,
    });
    await until(() => retries.length >= 4, "four retries");
    controller.abort();
    await within(running, 5_000, "run() resolved after the abort");
    assert.deepEqual(retries.slice(0, 4).map((r) => [r.attempt, r.delayMs]), [
      [1, 5],
      [2, 10],
      [3, 20],
      [4, 20],
    ]);
    assert.equal((retries[0].error as { code: string }).code, "ECONNREFUSED");
  });

  it("still rejects at once on a non-transient error at startup", async () => {
    const store = await db.freshStore();
    await db.sql.unsafe(`drop table ${store.tables.checkpoints}`);
    const { logger, retries } = retryLog();
    const processor = new ProjectionProcessor(db.sql, store, { logger });
    await assert.rejects(
      processor.run(readModelProjection(store, "no_table"), {
        signal: AbortSignal.timeout(20_000),
      }),
      (error) => (error as { code?: string }).code === "42P01",
    );
    assert.equal(retries.length, 0);
  });

  it("validates retryTransientErrors", async () => {
    const store = await db.freshStore();
    assert.equal(new ProjectionProcessor(db.sql, store).config.retryTransientErrors, true);
    assert.throws(
      () => new ProjectionProcessor(db.sql, store, { retryTransientErrors: "yes" as never }),
      (error) => error instanceof ValidationError && error.field === "retryTransientErrors",
    );
  });

  it("classifies database errors", async () => {
    const table: [unknown, boolean, boolean][] = [
      // [error, transient, connection lost]
      [{ code: "CONNECTION_CLOSED" }, true, true],
      [{ code: "CONNECTION_DESTROYED" }, true, true],
      [{ code: "CONNECT_TIMEOUT" }, true, true],
      [{ code: "CONNECTION_ENDED" }, false, false],
      [{ code: "ECONNRESET" }, true, true],
      [{ code: "ECONNREFUSED" }, true, true],
      [{ code: "EPIPE" }, true, true],
      [{ code: "ETIMEDOUT" }, true, true],
      [{ code: "08006" }, true, true],
      [{ code: "08P01" }, true, true],
      [{ code: "57P01" }, true, true],
      [{ code: "57P02" }, true, true],
      [{ code: "57P03" }, true, true],
      [{ code: "57014" }, false, false],
      [{ code: "40001" }, true, false],
      [{ code: "40P01" }, true, false],
      [{ code: "23505" }, false, false],
      [{ code: "42P01" }, false, false],
      [{ code: 8006 }, false, false],
      [new Error("CONNECTION_CLOSED"), false, false],
      [null, false, false],
      ["08006", false, false],
    ];
    for (const [error, transient, lost] of table) {
      assert.equal(isTransientDatabaseError(error), transient, JSON.stringify(error));
      assert.equal(isConnectionLoss(error), lost, JSON.stringify(error));
    }

    // Real ones: a query whose backend is killed under it ...
    const { sql, app } = processorClient();
    const sleeping = sql`select pg_sleep(30)`.then(() => undefined, (e) => e);
    await until(async () => (await terminate(app)).length > 0, "the sleeping backend killed");
    const killed = await within(sleeping, 5_000, "the killed query failed");
    assert.ok(isTransientDatabaseError(killed), `${killed.code}`);
    // ... a client the caller ended, a missing table, a division by zero.
    const ended = postgres(db.url, { onnotice: () => {} });
    await ended.end();
    const afterEnd = await ended`select 1`.then(() => undefined, (e) => e);
    assert.equal(afterEnd.code, "CONNECTION_ENDED");
    assert.equal(isTransientDatabaseError(afterEnd), false);
    const missing = await db.sql`select from no_such_table`.then(() => undefined, (e) => e);
    assert.equal(missing.code, "42P01");
    assert.equal(isTransientDatabaseError(missing), false);
    const division = await db.sql`select 1 / 0`.then(() => undefined, (e) => e);
    assert.equal(division.code, "22012");
    assert.equal(isTransientDatabaseError(division), false);
  });
});
