import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type { PersistedEvent } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { holdTransaction, json, setupDatabase, type TestDb } from "./_db.ts";
import { deferred, waitUntil, within } from "./_projection.ts";

const event = (aggregateId: string) => ({
  aggregateType: "Account",
  aggregateId,
  eventType: "Opened",
  payload: json({}),
});

/** A projection whose handler resolves the promise waiting for each aggregate id. */
function awaitingProjection(name: string) {
  const waiting = new Map<string, ReturnType<typeof deferred<PersistedEvent>>>();
  const expect = (aggregateId: string) => {
    const d = deferred<PersistedEvent>();
    waiting.set(aggregateId, d);
    return d.promise;
  };
  return {
    expect,
    projection: {
      name,
      handle(e: PersistedEvent) {
        waiting.get(e.aggregateId)?.resolve(e);
      },
    },
  };
}

describe("projection processor wake-ups", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** Backends of this database idle after LISTENing on `channel`. */
  const listeners = async (channel: string) => {
    const [{ n }] = await db.sql`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and query = ${`listen "${channel}"`}`;
    return n as number;
  };

  const startIdle = async (
    store: PostgresStore,
    channel: string,
    name: string,
    aggregateTypes?: string[],
  ) => {
    const client = db.client();
    const { expect, projection: unscoped } = awaitingProjection(name);
    const projection = { ...unscoped, aggregateTypes };
    const controller = new AbortController();
    const processor = new ProjectionProcessor(client, store, {
      pollInterval: 60_000,
      maxPollInterval: 60_000,
    });
    // A first event, handled by the first poll: the processor then sleeps.
    const first = expect("first");
    await store.append(db.sql, [event("first")]);
    const running = processor.run(projection, { signal: controller.signal });
    await within(first, 10_000, "first event handled");
    await waitUntil("LISTEN set up", async () => await listeners(channel) === 1, 10_000);
    return { expect, controller, running, client };
  };

  it("is woken by an append's NOTIFY despite a 60 s poll interval", async () => {
    const store = await db.freshStore({ notifyChannel: "wake_a" });
    const { expect, controller, running } = await startIdle(store, "wake_a", "woken");
    for (const id of ["second", "third"]) {
      const handled = expect(id);
      await store.append(db.sql, [event(id)]);
      const e = await within(handled, 10_000, `${id} handled after NOTIFY`);
      assert.equal(e.aggregateId, id);
    }
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("remembers a NOTIFY that arrives while a batch runs, and reads again at once after it", async () => {
    const channel = "wake_mid";
    const store = await db.freshStore({ notifyChannel: channel });
    const { expect, controller, running, client } = await startIdle(
      store,
      channel,
      "mid_batch",
      ["Account"],
    );
    // Every checkpoint update waits for an advisory lock the test holds:
    // a batch can be held between its read and its commit.
    const schema = store.tables.schema;
    await db.sql.unsafe(`
      create function ${schema}.hold_checkpoints() returns trigger language plpgsql as $$
        begin perform pg_advisory_xact_lock_shared(4242); return new; end $$;
      create trigger hold_checkpoints before update on ${store.tables.checkpoints}
        for each row execute function ${schema}.hold_checkpoints()`);
    const holder = await holdTransaction(db.client({ max: 1 }));
    await holder.tx`select pg_advisory_xact_lock(4242)`;

    // An event out of the projection's scope, then a wake-up: the batch
    // reads none of its events, moves its checkpoints past the event, and
    // waits on the lock. Having processed nothing, the processor sleeps
    // after this batch, unless a wake-up came meanwhile.
    await store.append(db.sql, [{ ...event("other"), aggregateType: "Other" }]);
    await db.sql`select pg_notify(${channel}, 'Account')`;
    await waitUntil("the batch's checkpoint update to wait on the test's lock", async () => {
      const [{ n }] = await db.sql`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event = 'advisory'`;
      return n === 1;
    });

    // An event in scope commits while the batch is held; its NOTIFY reaches
    // the processor's listener (the test listens on the same connection,
    // after it) before the batch ends.
    const heard: string[] = [];
    await client.listen(channel, (payload) => void heard.push(payload));
    const handled = expect("during");
    await store.append(db.sql, [event("during")]);
    await waitUntil("the NOTIFY of the append made during the batch", () => heard.length > 0);
    await holder.commit();

    // The processor's poll interval is a minute: only the remembered
    // wake-up brings it back to the log at once.
    const e = await within(handled, 5_000, "the event appended during the batch to be handled");
    assert.equal(e.aggregateId, "during");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("is woken for the last appends of a burst whose wake-ups were gathered", async () => {
    const store = await db.freshStore({ notifyChannel: "wake_burst" });
    const { expect, controller, running } = await startIdle(store, "wake_burst", "burst");
    // Eight writers on one client: their wake-ups share NOTIFYs, and the
    // gap between NOTIFYs widens while they keep coming. Nothing is
    // appended after them: only the NOTIFY gathered last can wake the
    // processor for the burst's tail.
    const writer = db.client({ max: 8 });
    const writers = 8, appends = 40;
    const tail = Array.from({ length: writers }, (_, w) => expect(`burst-${w}-${appends - 1}`));
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < appends; i++) await store.append(writer, [event(`burst-${w}-${i}`)]);
    }));
    await within(Promise.all(tail), 10_000, "the burst's last events handled after a NOTIFY");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("polls without LISTEN when wake-ups are off", async () => {
    const store = await db.freshStore({ notifyChannel: "wake_b" });
    const { expect, projection } = awaitingProjection("polled");
    const controller = new AbortController();
    const running = new ProjectionProcessor(db.sql, store, {
      wakeUp: false,
      pollInterval: 10,
      maxPollInterval: 50,
    }).run(projection, { signal: controller.signal });
    for (const id of ["one", "two", "three"]) {
      const handled = expect(id);
      await store.append(db.sql, [event(id)]);
      await within(handled, 10_000, `${id} handled by polling`);
    }
    assert.equal(await listeners("wake_b"), 0);
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("keeps polling while committed events wait behind an open transaction", async () => {
    const store = await db.freshStore({ notifyChannel: false });
    let probes = 0;
    const client = db.client({
      debug: (_connection: number, query: string) => {
        if (query.includes("as pending")) probes++;
      },
    });
    const { expect, projection } = awaitingProjection("behind");
    const controller = new AbortController();
    // Idle, the poll interval would double to a minute: far beyond the
    // safety timeouts below.
    const running = new ProjectionProcessor(client, store, {
      pollInterval: 20,
      maxPollInterval: 60_000,
    }).run(projection, { signal: controller.signal });
    const blocker = db.client({ max: 1 });
    const release = deferred();
    const holding = deferred();
    // A transaction with an id, open: it holds the safe horizon back.
    const blocking = blocker.begin(async (tx) => {
      await tx`select pg_current_xact_id()`;
      holding.resolve();
      await release.promise;
    });
    await holding.promise;
    const handled = expect("waiting");
    await store.append(db.sql, [event("waiting")]);
    const before = probes;
    // With backoff alone, 15 more polls would take 20 ms * 2^15.
    await waitUntil("polls go on at the short interval", () => probes >= before + 15, 10_000);
    release.resolve();
    await blocking;
    await within(handled, 10_000, "event handled once the horizon passed it");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });

  it("survives the loss of its LISTEN connection", async () => {
    const store = await db.freshStore({ notifyChannel: "wake_c" });
    const { expect, controller, running } = await startIdle(store, "wake_c", "relisten");
    const [{ terminated }] = await db.sql`
      select count(pg_terminate_backend(pid))::int as terminated from pg_stat_activity
      where datname = current_database() and query = 'listen "wake_c"'`;
    assert.equal(terminated, 1);
    // postgres.js reconnects and LISTENs again; the processor polls at once
    // then, and keeps being woken afterwards.
    await waitUntil("LISTEN again", async () => await listeners("wake_c") === 1, 10_000);
    const handled = expect("after");
    await store.append(db.sql, [event("after")]);
    await within(handled, 10_000, "woken after the reconnect");
    controller.abort();
    await within(running, 10_000, "the run to end after the abort");
  });
});
