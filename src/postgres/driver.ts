/**
 * Workarounds for postgres.js (3.4.9), in one place. Each names the
 * upstream issue, or the code of postgres.js it works around, and is
 * guarded by a test that fails without it:
 *
 * - {@linkcode inTransaction}: postgres.js has no public way to tell a
 *   transaction's `tx` from a plain client.
 * - {@linkcode beginGuarded}: `sql.begin` costs a round trip for BEGIN
 *   alone, and when its connection dies while its body runs, it can crash
 *   the process (porsager/postgres#1208, #1154) or run the body's later
 *   statements outside the transaction (porsager/postgres#1216).
 *
 * @module
 */

import type { ReservedSql, Sql, TransactionSql, UnsafeQueryOptions } from "postgres";
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
 * Runs `body` in a transaction of its own, made safe for a connection that
 * dies while the body runs (a restart, a failover, `pg_terminate_backend`),
 * and one round trip shorter than `sql.begin`.
 *
 * - **BEGIN travels with the first statement.** `sql.begin` awaits BEGIN's
 *   reply before it calls its callback (`begin()` in src/index.js). Here the
 *   transaction runs on a reserved connection (`sql.reserve()`, where
 *   postgres.js allows BEGIN and pipelines statements), BEGIN is sent and
 *   the body called at once: its first statement leaves with BEGIN. BEGIN
 *   on an idle connection fails only with the connection; should it fail,
 *   the body's statements from then on are refused, and only what the body
 *   sent before BEGIN's reply may have run outside the transaction (a
 *   projection batch sends one read, and awaits it).
 * - **The connection goes back to the pool when the transaction ends**, as
 *   `sql.begin`'s does: BEGIN's `onexecute` hook (the option `begin()`
 *   itself uses) clears the reserved connection's `release` flag, so the
 *   pool takes it back at the first reply that finds it idle, the one to
 *   COMMIT or ROLLBACK (`ReadyForQuery` in src/connection.js), and ends it
 *   there when `sql.end()` is waiting for it. Nothing is sent after that.
 * - **No write to a closed socket.** The same hook sets the connection's
 *   `onclose`, the callback `begin()` uses to learn of a close. A body that
 *   fails with a connection loss goes quiet: it never settles, and nothing
 *   is sent on the connection (a write after the close throws out of a
 *   `setImmediate` and kills the process: porsager/postgres#1208, #1154,
 *   #1066). An error that only looks like one (a handler's own
 *   ECONNREFUSED from some other service) leaves the connection open:
 *   after a grace period of {@linkcode CLOSE_GRACE_MS}, the body fails as
 *   usual.
 * - **No statement outside the transaction.** Once the connection is
 *   closed, the pool may open it again for other work, and a statement the
 *   body still sends would run there, outside any transaction
 *   (porsager/postgres#1216 in `sql.begin`). The `tx` the body gets refuses
 *   every statement with a `CONNECTION_CLOSED` error from then on, and
 *   once the body has failed (work the body gave up waiting for, a handler
 *   past its timeout, cannot send one behind the ROLLBACK), and once the
 *   transaction is over.
 * - **No silent rollback.** A statement that failed and whose error the
 *   body caught leaves the transaction aborted, and PostgreSQL answers the
 *   COMMIT with ROLLBACK and no error: that answer is an error here.
 * - **No overlap with a retry.** Work passed to `track` (a handler call,
 *   which may await other things than the database) is waited for before
 *   the rejection comes: the caller may run the transaction again at
 *   once, never next to it. Tracked work that returns after the
 *   connection is gone never returns to the body.
 *
 * The `tx` is a `TransactionSql` like `sql.begin`'s: `savepoint(fn)` runs
 * `fn` in a savepoint, rolled back to when `fn` rejects; `prepare(name)`
 * ends the transaction with PREPARE TRANSACTION instead of COMMIT.
 *
 * Guarded by tests/transaction_test.ts (the connection's return to the
 * pool, and to `sql.end()`; BEGIN sent with the first statement; the
 * refusals; a caught failure; savepoints) and
 * tests/projection_outage_test.ts: "applies every event exactly once while
 * its connections are killed again and again" (the ROLLBACK down a closed
 * socket; the handler's write after the close), "retries a lost batch only
 * once its running handler has returned, and calls no handler on it after"
 * (the tracked work), and "retries a handler's own connection-like error
 * without hanging on its live transaction" (the grace period).
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
  // Set once the body may send nothing more.
  let gone = false;
  // Set once the connection has closed: nothing may be sent on it at all.
  let closed = false;
  let markClosed!: (error: unknown) => void;
  const lost = new Promise<never>((_, reject) => {
    markClosed = (error) => {
      closed = gone = true;
      reject(error);
    };
  });
  lost.catch(noop);
  // The tracked work in flight, to wait for before rejecting.
  let inFlight: Promise<unknown> | undefined;
  const track = async <R>(work: Promise<R>): Promise<R> => {
    inFlight = work;
    const result = await work;
    if (closed) return await forever();
    return result;
  };

  const reserved = await sql.reserve();
  let connection: PoolConnection | undefined;
  const begin = reserved.unsafe("begin", [], {
    onexecute(c: PoolConnection) {
      connection = c;
      c.reserved!.release = false;
      c.onclose = markClosed;
      // More statements may follow before BEGIN's reply.
      return true;
    },
  } as UnsafeQueryOptions);
  let begun = true;
  begin.then(noop, () => {
    begun = false;
    gone = true;
    // Never sent: the connection is still reserved.
    if (connection === undefined) reserved.release();
  });
  const { tx, preparedAs } = transactionOn(reserved, () => gone);

  const run = async (): Promise<T> => {
    let result: T;
    try {
      result = await body(tx, track);
      await begin;
    } catch (error) {
      if (closed || (isConnectionLoss(error) && await closesWithin(lost))) return await forever();
      gone = true;
      if (!begun) throw await begin.then(() => error, (failure) => failure);
      await reserved`rollback`.catch(noop);
      throw error;
    }
    gone = true;
    const name = preparedAs();
    const { command } = name === undefined
      ? await reserved`commit`
      : await reserved.unsafe(`prepare transaction '${name.replaceAll("'", "''")}'`);
    if (command === "ROLLBACK") throw new TransactionRolledBack();
    return result;
  };
  try {
    return await Promise.race([run(), lost]);
  } catch (error) {
    gone = true;
    await inFlight?.then(noop, noop);
    throw error;
  }
}

/**
 * What `beginGuarded` uses of postgres.js's connection object (3.4.9):
 * `reserved`, set by `sql.reserve()`, whose `release` flag keeps the
 * connection out of the pool while idle; `onclose`, called by the pool
 * once, when the connection closes (src/index.js).
 */
interface PoolConnection {
  reserved: { release?: boolean } | null;
  onclose: ((error: unknown) => void) | null;
}

/** The error when COMMIT finds the transaction aborted by a statement whose error was caught. */
class TransactionRolledBack extends Error {
  /** SQLSTATE in_failed_sql_transaction. */
  readonly code = "25P02";
  constructor() {
    super(
      "the transaction was rolled back at COMMIT: a statement in it failed, and its error " +
        "was caught instead of thrown; let the error propagate, or run the statement in " +
        "tx.savepoint() to go on without it",
    );
    this.name = "TransactionRolledBack";
  }
}

/**
 * The `tx` the body of {@linkcode beginGuarded} gets: the reserved
 * connection, refusing statements once `over()`, with `savepoint` and
 * `prepare` as on `sql.begin`'s, and no `release`.
 */
function transactionOn(
  // deno-lint-ignore no-explicit-any -- any client configuration
  reserved: ReservedSql<any>,
  over: () => boolean,
  // deno-lint-ignore no-explicit-any -- any client configuration
): { tx: TransactionSql<any>; preparedAs: () => string | undefined } {
  let savepoints = 0;
  let prepared: string | undefined;
  // deno-lint-ignore no-explicit-any -- any client configuration
  const tx = guard(reserved as unknown as TransactionSql<any>, over);
  Object.assign(reserved, {
    // deno-lint-ignore no-explicit-any -- postgres.js's overloads
    async savepoint(nameOrWork: any, maybeWork?: any) {
      const [label, work] = typeof nameOrWork === "function"
        ? [undefined, nameOrWork]
        : [String(nameOrWork), maybeWork];
      const name = `"s${savepoints++}${
        label === undefined ? "" : "_" + label.replaceAll('"', '""')
      }"`;
      await tx.unsafe(`savepoint ${name}`);
      try {
        const result = work(tx);
        return await (Array.isArray(result) ? Promise.all(result) : result);
      } catch (error) {
        if (!over()) await tx.unsafe(`rollback to savepoint ${name}`);
        throw error;
      }
    },
    prepare(name: string) {
      prepared = name;
      return Promise.resolve();
    },
  });
  return { tx, preparedAs: () => prepared };
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

/** Whether `lost` rejects within {@linkcode CLOSE_GRACE_MS}. */
async function closesWithin(lost: Promise<never>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS, false));
  try {
    return await Promise.race([lost.catch(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Statement-issuing methods of a postgres.js transaction, besides calling it. */
const QUERY_METHODS: ReadonlySet<PropertyKey> = new Set([
  "unsafe",
  "file",
  "notify",
  "savepoint",
]);

/**
 * `tx`, refusing every statement with a `CONNECTION_CLOSED` error once
 * `gone()` says the transaction is over, and without `release` (a reserved
 * connection's), which would hand the connection back mid-transaction.
 */
// deno-lint-ignore no-explicit-any -- any client configuration
function guard<T extends TransactionSql<any>>(tx: T, gone: () => boolean): T {
  const check = () => {
    if (gone()) {
      throw Object.assign(
        new Error(
          "CONNECTION_CLOSED: the transaction is over (committed, rolled back, or its " +
            "connection lost); no statement can join it",
        ),
        { code: "CONNECTION_CLOSED" },
      );
    }
  };
  return new Proxy(tx, {
    apply(target, self, args) {
      check();
      return Reflect.apply(target, self, args);
    },
    has(target, key) {
      return key !== "release" && Reflect.has(target, key);
    },
    get(target, key, receiver) {
      if (key === "release") return undefined;
      const value = Reflect.get(target, key, receiver);
      if (!QUERY_METHODS.has(key) || typeof value !== "function") return value;
      return (...args: unknown[]) => {
        check();
        return Reflect.apply(value, target, args);
      };
    },
  });
}
