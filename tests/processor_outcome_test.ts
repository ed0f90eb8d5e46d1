import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import postgres from "postgres";
import { DatabaseUnavailableError, type LogFields, ValidationError } from "../src/es/mod.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { type Projection, ProjectionProcessor } from "../src/projection/mod.ts";
import { runMultipleProjections, runProjectionPartitions } from "../src/runner/mod.ts";
import { Backoff } from "../src/projection/transient.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { appendEvents, deferred, within } from "./_projection.ts";

/** A logger that keeps its lines, and can wait for one. */
function recordingLogger() {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const waiters: { test: () => boolean; resolve: () => void }[] = [];
  const push = (level: string) => (message: string, fields?: LogFields) => {
    lines.push({ level, message, fields });
    for (const waiter of waiters.splice(0)) {
      if (waiter.test()) waiter.resolve();
      else waiters.push(waiter);
    }
  };
  const retries = () =>
    lines.filter((l) => l.message === "projection processor database error, retrying");
  return {
    logger: { debug: push("debug"), info: push("info"), error: push("error") },
    lines,
    retries,
    /** Resolves once `test` holds, checked after every line. */
    until(test: () => boolean): Promise<void> {
      if (test()) return Promise.resolve();
      const { promise, resolve } = deferred();
      waiters.push({ test, resolve });
      return promise;
    },
  };
}

/** A local port nothing listens on: connecting to it is refused. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const counting = (name: string): Projection & { seen: number } => {
  const projection = {
    name,
    seen: 0,
    handle() {
      projection.seen++;
    },
  };
  return projection;
};

describe("ProjectionProcessor.run's outcome", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  it("resolves caught_up with the events and batches of this run", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 5, perAggregate: 1 });
    const processor = new ProjectionProcessor(db.sql, store, { batchSize: 2 });
    const projection = counting("outcome_counts");
    const first = await within(
      processor.run(projection, { mode: "until_caught_up" }),
      20_000,
      "the first catch-up",
    );
    assert.deepEqual(first, {
      status: "caught_up",
      processed: 5,
      batches: 3,
      retries: 0,
      retried: 0,
      skipped: 0,
      parked: 0,
    });
    const second = await within(
      processor.run(projection, { mode: "until_caught_up" }),
      20_000,
      "the second catch-up",
    );
    assert.deepEqual(second, {
      status: "caught_up",
      processed: 0,
      batches: 0,
      retries: 0,
      retried: 0,
      skipped: 0,
      parked: 0,
    });
    assert.equal(projection.seen, 5);
  });

  it("resolves aborted, not caught_up, when the signal stops a catch-up", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 3, perAggregate: 1 });
    const inHandler = deferred();
    const release = deferred();
    const controller = new AbortController();
    const run = new ProjectionProcessor(db.sql, store).run({
      name: "outcome_aborted",
      async handle() {
        inHandler.resolve();
        await release.promise;
      },
    }, { mode: "until_caught_up", signal: controller.signal });
    await within(inHandler.promise, 20_000, "the handler's first call");
    controller.abort();
    release.resolve();
    // The batch in flight is rolled back: nothing of it counts.
    assert.deepEqual(await within(run, 20_000, "the aborted run"), {
      status: "aborted",
      processed: 0,
      batches: 0,
      retries: 0,
      retried: 0,
      skipped: 0,
      parked: 0,
    });
  });

  it("resolves aborted with what it committed when a continuous run stops", async () => {
    const store = await db.freshStore();
    await appendEvents(db.sql, store, { aggregates: 4, perAggregate: 1 });
    const projection = counting("outcome_continuous");
    const logs = recordingLogger();
    const controller = new AbortController();
    const run = new ProjectionProcessor(db.sql, store, { logger: logs.logger }).run(projection, {
      signal: controller.signal,
    });
    await within(
      logs.until(() => logs.lines.some((l) => l.message === "events processed")),
      20_000,
      "the first committed batch",
    );
    controller.abort();
    assert.deepEqual(await within(run, 20_000, "the aborted run"), {
      status: "aborted",
      processed: 4,
      batches: 1,
      retries: 0,
      retried: 0,
      skipped: 0,
      parked: 0,
    });
  });

  for (
    const [what, url, codes] of [
      ["a refused port", async () => `postgres://u@127.0.0.1:${await refusedPort()}/db`, [
        "ECONNREFUSED",
      ]],
      ["an unknown host name", () => Promise.resolve("postgres://u@nonexistent.invalid:5432/db"), [
        "ENOTFOUND",
        "EAI_AGAIN",
      ]],
    ] as const
  ) {
    describe(`a database at ${what}`, () => {
      const unreachable = async () =>
        postgres(await url(), { max: 1, connect_timeout: 5, onnotice: () => {} });

      it("is retried, each retry logged, and a catch-up gives up after catchUpTimeout", async () => {
        const sql = await unreachable();
        const logs = recordingLogger();
        const processor = new ProjectionProcessor(sql, new PostgresStore(), {
          pollInterval: 20,
          maxPollInterval: 100,
          catchUpTimeout: 600,
          logger: logs.logger,
        });
        const started = performance.now();
        const error = await within(
          processor.run(counting("unreachable"), { mode: "until_caught_up" }).then(
            (outcome) => assert.fail(`expected a rejection, got ${JSON.stringify(outcome)}`),
            (error: unknown) => error,
          ),
          15_000,
          `the catch-up against ${what} to give up`,
        );
        const took = performance.now() - started;
        assert.ok(error instanceof DatabaseUnavailableError, String(error));
        assert.equal(error.projection, "unreachable");
        assert.ok(error.elapsedMs >= 600, `elapsedMs ${error.elapsedMs}`);
        assert.ok(took < 10_000, `gave up after ${took} ms`);
        const cause = error.cause as { code?: string };
        assert.ok((codes as readonly string[]).includes(cause.code!), `cause code ${cause.code}`);
        const retries = logs.retries();
        assert.ok(retries.length >= 2, `${retries.length} retries logged`);
        assert.equal(error.attempts, retries.length + 1);
        retries.forEach(({ level, fields }, i) => {
          assert.equal(level, "error");
          assert.equal(fields?.projection, "unreachable");
          assert.equal(fields?.code, cause.code);
          assert.equal(typeof fields?.message, "string");
          assert.equal(fields?.attempt, i + 1);
          assert.ok(typeof fields?.delayMs === "number" && fields.delayMs > 0);
          assert.ok(typeof fields?.elapsedMs === "number");
        });
        await sql.end();
      });

      it("is retried forever by a continuous run, which resolves aborted", async () => {
        const sql = await unreachable();
        const logs = recordingLogger();
        const controller = new AbortController();
        const run = new ProjectionProcessor(sql, new PostgresStore(), {
          pollInterval: 20,
          maxPollInterval: 50,
          catchUpTimeout: 100,
          logger: logs.logger,
        }).run(counting("unreachable_continuous"), { signal: controller.signal });
        // Well past catchUpTimeout: continuous runs ignore it.
        await within(
          logs.until(() => logs.retries().some((l) => (l.fields?.elapsedMs as number) >= 400)),
          15_000,
          "retries logged for 400 ms",
        );
        controller.abort();
        const outcome = await within(run, 10_000, "the aborted run");
        assert.equal(outcome.status, "aborted");
        assert.equal(outcome.processed, 0);
        assert.ok(outcome.retries >= logs.retries().length - 1, JSON.stringify(outcome));
        await sql.end();
      });

      it("resolves aborted when a catch-up is aborted while retrying", async () => {
        const sql = await unreachable();
        const logs = recordingLogger();
        const controller = new AbortController();
        const run = new ProjectionProcessor(sql, new PostgresStore(), {
          pollInterval: 20,
          catchUpTimeout: 60_000,
          logger: logs.logger,
        }).run(counting("unreachable_aborted"), {
          mode: "until_caught_up",
          signal: controller.signal,
        });
        await within(logs.until(() => logs.retries().length >= 2), 15_000, "two retries logged");
        controller.abort();
        const outcome = await within(run, 10_000, "the aborted run");
        assert.equal(outcome.status, "aborted");
        assert.equal(outcome.processed, 0);
        assert.ok(outcome.retries >= 2, JSON.stringify(outcome));
        await sql.end();
      });
    });
  }
});

describe("catchUpTimeout", () => {
  it("counts the time without reaching the database: a success starts the clock again", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
    });
    const backoff = new Backoff({
      enabled: true,
      pollInterval: 10,
      maxPollInterval: 20,
      giveUpAfter: 300,
      logger: undefined,
      projection: "streaks",
    });
    /** Fails, and waits as told, for about `ms`. */
    const failFor = async (ms: number) => {
      const start = performance.now();
      while (performance.now() - start < ms) await backoff.recover(refused, undefined);
    };
    // Two outages of 200 ms each, 400 ms in all, with a success between.
    await within(failFor(200), 5000, "the first outage");
    backoff.reset();
    await within(failFor(200), 5000, "the second outage");
    // The second streak goes on past 300 ms: now it gives up.
    const error = await within(
      failFor(1000).then(() => assert.fail("expected to give up"), (e: unknown) => e),
      5000,
      "giving up",
    );
    assert.ok(error instanceof DatabaseUnavailableError, String(error));
    // A loose upper bound: a timer late on a loaded machine only delays giving up.
    assert.ok(error.elapsedMs >= 300 && error.elapsedMs < 2000, `elapsedMs ${error.elapsedMs}`);
    assert.equal(error.cause, refused);
    assert.ok(backoff.retries > error.attempts, `${backoff.retries} retries in all`);
  });
});

describe("options of run and of the runners", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  const projection: Projection = { name: "options_checked", handle() {} };
  const isError = (field: string) => (error: unknown) =>
    error instanceof ValidationError && error.field === field;
  /** Rejects, within a bound: an option let through would retry a dead client forever. */
  const refuses = (promise: Promise<unknown>, field: string) =>
    assert.rejects(within(promise, 5000, `the refusal of ${field}`), isError(field));

  it("refuses null and unknown keys, before any SQL", async () => {
    // A client that cannot connect: any SQL would hang or fail otherwise.
    const sql = postgres(`postgres://u@127.0.0.1:${await refusedPort()}/db`, { max: 1 });
    const store = new PostgresStore();
    const processor = new ProjectionProcessor(sql, store);
    // deno-lint-ignore no-explicit-any -- bad input on purpose
    const bad = null as any;
    await refuses(processor.run(projection, bad), "options");
    await refuses(processor.run(projection, { mod: "until_caught_up" } as never), "options.mod");
    await refuses(runProjectionPartitions(sql, store, projection, 2, bad), "options");
    await refuses(
      runProjectionPartitions(sql, store, projection, 2, { signals: undefined } as never),
      "options.signals",
    );
    await refuses(runMultipleProjections(sql, store, [{ projection }], bad), "options");
    await refuses(
      runMultipleProjections(sql, store, [{ projection }], { config: {} } as never),
      "options.config",
    );
    assert.throws(() => new ProjectionProcessor(sql, store, bad), isError("config"));
    assert.throws(
      () => new ProjectionProcessor(sql, store, { batchsize: 10 } as never),
      (error: unknown) =>
        isError("config.batchsize")(error) && (error as Error).message.includes('"batchSize"'),
    );
    for (const catchUpTimeout of [0, -1, Number.NaN, "1000"]) {
      assert.throws(
        () => new ProjectionProcessor(sql, store, { catchUpTimeout } as never),
        isError("catchUpTimeout"),
      );
    }
    await sql.end();
  });

  it("refuses a signal that is not an AbortSignal, with one error for run and the runners", async () => {
    const store = await db.freshStore();
    const signal = { aborted: false } as unknown as AbortSignal;
    const errors: ValidationError[] = [];
    const collect = async (promise: Promise<unknown>) => {
      const error = await within(
        promise.then(() => undefined, (e: unknown) => e),
        5000,
        "the refusal of options.signal",
      );
      assert.ok(error instanceof ValidationError, String(error));
      errors.push(error);
    };
    await collect(new ProjectionProcessor(db.sql, store).run(projection, { signal }));
    await collect(runProjectionPartitions(db.sql, store, projection, 2, { signal }));
    await collect(runMultipleProjections(db.sql, store, [{ projection }], { signal }));
    for (const error of errors) {
      assert.equal(error.field, "options.signal");
      assert.equal(error.message, errors[0].message);
    }
    // Refused before any SQL: no checkpoint rows were created.
    const [{ count }] = await db.sql`
      select count(*)::int as count from ${db.sql(store.tables.checkpoints)}`;
    assert.equal(count, 0);
  });
});
