/**
 * handleCommand and aggregateStream: conflict retries with real concurrent
 * connections, idempotent commands after a lost response, and the bad
 * input that must append nothing.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  aggregateStream,
  DeciderError,
  type EventStore,
  handleCommand,
  InMemoryStore,
  OptimisticConcurrencyError,
  ValidationError,
} from "../src/es/mod.ts";
import type { Db } from "../src/postgres/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { type Account, deposit, InsufficientFunds, open, options, withdraw } from "./_bank.ts";

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());

const account = (id: string) => ({ aggregateType: "Account", aggregateId: id });

/** A store whose appends commit, then fail as a lost response would, `times` times. */
function losingResponses<D>(store: EventStore<D>, times: number): EventStore<D> {
  let left = times;
  return {
    readAggregateStream: (...args) => store.readAggregateStream(...args),
    readEvents: (...args) => store.readEvents(...args),
    appendMany: (...args) => store.appendMany(...args),
    async append(...args) {
      const result = await store.append(...args);
      if (left-- > 0) throw new Error("read ECONNRESET (the response was lost)");
      return result;
    },
  };
}

describe("handleCommand", () => {
  it("applies 8 concurrent commands on one aggregate exactly once each, as a serial run would", async () => {
    const store = await database.freshStore({ notifyChannel: false });
    const id = "acc-race";
    await handleCommand(store, database.sql, account(id), open("ann"), options);
    const amounts = [1n, 2n, 4n, 8n, 16n, 32n, 64n, 128n];
    let decisions = 0;
    const clients = amounts.map(() => database.client({ max: 1 }));
    const results = await Promise.all(
      amounts.map((amount, i) =>
        handleCommand(store, clients[i] as Db, account(id), (state: Account) => {
          decisions++;
          return deposit(amount)(state);
        }, { ...options, retries: 20, commandId: `deposit-${i}` })
      ),
    );
    assert.ok(
      decisions > amounts.length,
      `expected conflicts and retries, got ${decisions} decisions`,
    );
    const { state, version } = await aggregateStream(store, database.sql, account(id), options);
    assert.equal(version, 9n);
    assert.equal(state.balance, 255n);
    assert.deepEqual(
      [...results.map((r) => r.version)].sort((a, b) => (a < b ? -1 : 1)),
      [2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n],
    );
    // The same commands one after the other, in memory.
    const serial = new InMemoryStore();
    await handleCommand(serial, undefined, account(id), open("ann"), options);
    for (const amount of amounts) {
      await handleCommand(serial, undefined, account(id), deposit(amount), options);
    }
    assert.deepEqual(state, (await aggregateStream(serial, undefined, account(id), options)).state);
  });

  it("gives up after `retries` conflicts with the store's OptimisticConcurrencyError", async () => {
    const store = new InMemoryStore();
    await handleCommand(store, undefined, account("a"), open("ann"), options);
    let calls = 0;
    // Each decision is overtaken by another append before it lands.
    const racing = async () =>
      await handleCommand(store, undefined, account("a"), (state: Account) => {
        calls++;
        void store.append(undefined, [{
          ...account("a"),
          ...options.codec.encode({ type: "Deposited", data: { amount: 1n } }),
        }]);
        return deposit(5n)(state);
      }, { ...options, retries: 2, backoff: () => 0 });
    await assert.rejects(racing(), OptimisticConcurrencyError);
    assert.equal(calls, 3);
  });

  for (const backend of ["PostgreSQL", "memory"] as const) {
    it(`returns the first result to an idempotent command retried after a lost response (${backend})`, async () => {
      const { store, db } = backend === "memory"
        ? { store: new InMemoryStore() as EventStore<unknown>, db: undefined as unknown }
        : {
          store: await database.freshStore() as EventStore<unknown>,
          db: database.sql as unknown,
        };
      await handleCommand(store, db, account("a"), open("ann"), options);
      await handleCommand(store, db, account("a"), deposit(100n), options);
      const command = { ...options, commandId: "withdraw-all" };
      await assert.rejects(
        handleCommand(losingResponses(store, 1), db, account("a"), withdraw(100n), command),
        /response was lost/,
      );
      // Handled again, the command would now fail (the balance is 0):
      // its first handling's result comes back instead, and nothing more is stored.
      const again = await handleCommand(store, db, account("a"), withdraw(100n), command);
      const stream = await store.readAggregateStream(db, "Account", "a");
      assert.equal(stream.version, 3n);
      assert.deepEqual(again.appendResult?.events.map((e) => e.eventId), [
        stream.events[2].eventId,
      ]);
      assert.equal(again.newState.balance, 0n);
      assert.deepEqual(again.newEvents, [{ type: "Withdrawn", data: { amount: 100n } }]);
      assert.equal(again.version, 3n);
      // Later events do not change the answer.
      await handleCommand(store, db, account("a"), deposit(7n), options);
      const late = await handleCommand(store, db, account("a"), withdraw(100n), command);
      assert.equal(late.version, 3n);
      assert.equal((await store.readAggregateStream(db, "Account", "a")).version, 4n);
      // Two handlings of one new command racing: one append.
      const both = await Promise.all(
        [1, 2].map(() =>
          handleCommand(store, db, account("a"), deposit(1n), { ...options, commandId: "twice" })
        ),
      );
      assert.deepEqual(
        both[0].appendResult?.globalPositions,
        both[1].appendResult?.globalPositions,
      );
      assert.equal((await store.readAggregateStream(db, "Account", "a")).version, 5n);
    });
  }

  it("derives the same event ids from the same command, and others from another", async () => {
    const ids = async (store: InMemoryStore, commandId: string) =>
      (await handleCommand(store, undefined, account("a"), open("ann"), { ...options, commandId }))
        .appendResult!.events[0].eventId;
    const [one, two, other] = [
      await ids(new InMemoryStore(), "c-1"),
      await ids(new InMemoryStore(), "c-1"),
      await ids(new InMemoryStore(), "c-2"),
    ];
    assert.equal(one, two);
    assert.notEqual(one, other);
    assert.equal(one[14], "5");
  });

  it("appends nothing when decide or evolve throws, and names which", async () => {
    const store = new InMemoryStore();
    await assert.rejects(
      handleCommand(store, undefined, account("a"), withdraw(1n), options),
      (error: unknown) =>
        error instanceof DeciderError && error.step === "decide" &&
        error.cause instanceof InsufficientFunds && /Account "a"/.test(error.message),
    );
    await assert.rejects(
      handleCommand(store, undefined, account("a"), open("ann"), {
        ...options,
        evolve: () => {
          throw new Error("bug in evolve");
        },
      }),
      (error: unknown) =>
        error instanceof DeciderError && error.step === "evolve" &&
        /Opened \(version 1\)/.test(error.message),
    );
    assert.equal((await store.readEvents(undefined)).length, 0);
  });

  it("refuses bad options before reading anything", async () => {
    const store = new InMemoryStore();
    const cases: [string, Record<string, unknown>][] = [
      ["options.retries", { retries: -1 }],
      ["options.retries", { retries: 1.5 }],
      ["options.snapshots.every", { snapshots: { store, every: 0, version: 1 } }],
      ["options.snapshots.version", { snapshots: { store, every: 10, version: 0 } }],
      ["options.snapshots.store", { snapshots: { store: {}, every: 10, version: 1 } }],
      ["options.commandId", { commandId: "" }],
      ["options.commandId", { commandId: "  " }],
      ["options.retry", { retry: 3 }],
    ];
    for (const [field, extra] of cases) {
      await assert.rejects(
        handleCommand(store, undefined, account("a"), open("ann"), { ...options, ...extra }),
        (error: unknown) => error instanceof ValidationError && error.field === field,
        field,
      );
    }
    await assert.rejects(
      aggregateStream(store, undefined, { aggregateType: "Account", aggregateId: "" }, options),
      (error: unknown) => error instanceof ValidationError && error.field === "stream.aggregateId",
    );
    assert.equal((await store.readEvents(undefined)).length, 0);
  });
});
