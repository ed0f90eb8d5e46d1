/**
 * Workarounds for postgres.js (3.4.9), in one place. Each names the
 * upstream issue, or the code of postgres.js it works around, and is
 * guarded by a test that fails without it:
 *
 * - {@linkcode inTransaction}: postgres.js has no public way to tell a
 *   transaction's `tx` from a plain client.
 * - {@linkcode beginGuarded}: a `sql.begin` whose connection dies while
 *   its body runs can crash the process (porsager/postgres#1208, #1154)
 *   or run the body's later statements outside the transaction
 *   (porsager/postgres#1216).
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import type { Db } from "./db.ts";

/**
 * Whether `db` is the `tx` of `sql.begin` (or of a savepoint), where
 * statements join the caller's transaction, rather than a client that
 * commits each statement on its own (a pool, a reserved connection).
 *
 * postgres.js offers no way to ask: only a transaction's `sql` has a
 * `savepoint` method, set in `begin()`'s `scope()` (src/index.js, line
 * 253 in 3.4.9; `TransactionSql` in types/index.d.ts). Guarded by
 * tests/append_many_test.ts ("a refusal leaves the transaction usable",
 * "an exact retry returns the original results"): an append to several
 * aggregates in a caller's transaction taken for one on a plain client
 * runs without its savepoint, so a refusal aborts the caller's
 * transaction.
 */
// deno-lint-ignore no-explicit-any -- any client configuration
export function inTransaction(db: Db): db is TransactionSql<any> {
  return "savepoint" in db;
}

/**
 * Runs `body` in `sql.begin`, made safe for a connection that dies while
 * the body runs (a restart, a failover, `pg_terminate_backend`):
 *
 * - **No write to a closed socket.** When the body fails, `begin()` sends
 *   ROLLBACK on the transaction's connection (`scope()` in src/index.js);
 *   once that connection has closed, the write throws out of a
 *   `setImmediate` (`nextWrite` in src/connection.js) and the process
 *   dies: porsager/postgres#1208 (through `begin()`), #1154 and #1066.
 *   `begin()` rejects by itself when the connection closes
 *   (`connection.onclose = reject`), so a body that fails with a
 *   connection loss goes quiet instead: it never settles, and nothing is
 *   sent. An error that only looks like one (a handler's own ECONNREFUSED
 *   from some other service) leaves the connection open: after a grace
 *   period of {@linkcode CLOSE_GRACE_MS}, the body fails as usual.
 * - **No statement outside the transaction.** Once `begin()` has
 *   rejected, the body may still run, and postgres.js would send its
 *   statements on the connection reopened for other work, outside any
 *   transaction: porsager/postgres#1216 (fix proposed in #1215). The `tx`
 *   the body gets refuses every statement from then on with a
 *   `CONNECTION_CLOSED` error.
 * - **Nothing after the body.** Once the body has failed, and once the
 *   transaction is over, `tx` refuses every statement too: work the body
 *   gave up waiting for (a handler past its timeout) cannot send one
 *   behind the ROLLBACK, or into the next transaction on the same
 *   connection. The refusal holds when the statement is sent, not only
 *   when it is made: postgres.js sends a query when it is first awaited,
 *   and a query made in time may be awaited too late.
 * - **No overlap with a retry.** Work passed to `track` (a handler call,
 *   which may await other things than the database) is waited for before
 *   the rejection comes: the caller may run the transaction again at
 *   once, never next to it. Tracked work that returns after the
 *   connection is gone never returns to the body.
 *
 * Guarded by tests/transaction_test.ts (the refusals once the transaction
 * is over) and tests/projection_outage_test.ts: "applies every event exactly
 * once while its connections are killed again and again" (the ROLLBACK
 * down a closed socket; the handler's write after the close), "retries a
 * lost batch only once its running handler has returned, and calls no
 * handler on it after" (the tracked work), and "retries a handler's own
 * connection-like error without hanging on its live transaction" (the
 * grace period).
 *
 * @param isConnectionLoss tells whether a body's error means the
 * connection is lost.
 */
export async function beginGuarded<T>(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  // deno-lint-ignore no-explicit-any -- any client configuration
  body: (tx: TransactionSql<any>, track: <R>(work: Promise<R>) => Promise<R>) => Promise<T>,
  isConnectionLoss: (error: unknown) => boolean,
): Promise<T> {
  // Set once `sql.begin` has rejected: the body must not touch `tx` again.
  let gone = false;
  let markGone!: () => void;
  const goneSignal = new Promise<void>((resolve) => markGone = resolve);
  // The tracked work in flight, to wait for before rejecting.
  let inFlight: Promise<unknown> | undefined;
  const track = async <R>(work: Promise<R>): Promise<R> => {
    inFlight = work;
    const result = await work;
    if (gone) return await forever();
    return result;
  };
  try {
    return await sql.begin(async (tx) => {
      try {
        return await body(guard(tx, () => gone), track);
      } catch (error) {
        if (gone || (isConnectionLoss(error) && await closesWithin(goneSignal))) {
          return await forever();
        }
        // The ROLLBACK goes out next: work the body left running (a handler
        // given up on after a timeout) must send nothing after it, where it
        // would run outside the transaction.
        gone = true;
        throw error;
      }
    }) as T;
  } catch (error) {
    gone = true;
    markGone();
    await inFlight?.then(noop, noop);
    throw error;
  } finally {
    gone = true;
  }
}

/**
 * A promise that never settles, for a transaction body whose connection
 * is gone: settling it would make postgres.js send COMMIT or ROLLBACK down
 * a closed socket. Nothing holds on to it, so it is collected.
 */
function forever(): Promise<never> {
  return new Promise<never>(noop);
}

function noop(): void {}

/** How long a body that saw a connection error waits for the connection to close. */
export const CLOSE_GRACE_MS = 1000;

/** Whether `gone` settles within {@linkcode CLOSE_GRACE_MS}. */
async function closesWithin(gone: Promise<void>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS, false));
  try {
    return await Promise.race([gone.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Statement-issuing methods of a postgres.js transaction, besides calling it. */
const QUERY_METHODS: ReadonlySet<PropertyKey> = new Set(["unsafe", "file", "notify", "savepoint"]);

/** What `guard` uses of a postgres.js query (src/query.js in 3.4.9). */
interface QueryInternals {
  /** Sends the query; called once, when the query is first awaited or executed. */
  handler: ((query: unknown) => unknown) & { debug?: unknown };
  reject(error: unknown): void;
}

/**
 * `tx`, refusing every statement with a `CONNECTION_CLOSED` error once
 * `gone()` says the transaction is over: when the statement is made, and
 * again when postgres.js sends it (its `handler`, on the first await). A
 * savepoint's callback gets a guarded `tx` too.
 */
// deno-lint-ignore no-explicit-any -- any client configuration
function guard<T extends TransactionSql<any>>(tx: T, gone: () => boolean): T {
  const refusal = () =>
    Object.assign(
      new Error(
        "CONNECTION_CLOSED: the transaction is over (committed, rolled back, or its " +
          "connection lost); no statement can join it",
      ),
      { code: "CONNECTION_CLOSED" },
    );
  const check = () => {
    if (gone()) throw refusal();
  };
  const refuseWhenSent = (made: unknown) => {
    const query = made as Partial<QueryInternals> | null;
    if (typeof query?.handler !== "function" || typeof query.reject !== "function") return made;
    const send = query.handler;
    const reject = query.reject;
    query.handler = Object.assign(
      (self: unknown) => gone() ? reject(refusal()) : send(self),
      { debug: send.debug },
    );
    return made;
  };
  return new Proxy(tx, {
    apply(target, self, args) {
      check();
      return refuseWhenSent(Reflect.apply(target, self, args));
    },
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (!QUERY_METHODS.has(key) || typeof value !== "function") return value;
      if (key === "savepoint") {
        return (...args: unknown[]) => {
          check();
          const work = args.at(-1);
          if (typeof work === "function") {
            args[args.length - 1] = (inner: T) => work(guard(inner, gone));
          }
          return Reflect.apply(value, target, args);
        };
      }
      return (...args: unknown[]) => {
        check();
        return refuseWhenSent(Reflect.apply(value, target, args));
      };
    },
  });
}
