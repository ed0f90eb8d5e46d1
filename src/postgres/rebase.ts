/**
 * Rebases the log after the database was moved into a new cluster.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/validate.ts";
import { requireClient, table } from "./db.ts";
import { PostgresStore } from "./store.ts";
import { offsetFunctionSql, offsetSql } from "./order.ts";
import { quote } from "./tables.ts";

/**
 * Options of {@linkcode rebaseLog}.
 *
 * @example
 * ```ts
 * import { PostgresStore, type RebaseOptions } from "@getpup/pupsourcing/postgres";
 *
 * const options: RebaseOptions = { store: new PostgresStore({ schema: "es" }) };
 * ```
 */
export interface RebaseOptions {
  /**
   * The store whose log to rebase: its table names and its logger are
   * used. Default: `new PostgresStore()`, the default names.
   */
  store?: PostgresStore;
}

/**
 * What {@linkcode rebaseLog} found and did.
 *
 * @example
 * ```ts
 * import type { RebaseResult } from "@getpup/pupsourcing/postgres";
 *
 * const say = (r: RebaseResult) => r.rebased ? `offset now ${r.offset}` : "nothing to do";
 * ```
 */
export interface RebaseResult {
  /** Whether the offset was raised; `false` when the log needed no rebase. */
  rebased: boolean;
  /** The ordering offset before the call. */
  previousOffset: bigint;
  /** The ordering offset now: new events are filed under their transaction id plus it. */
  offset: bigint;
  /** The largest order key stored in the log and the checkpoints; `null` when there is none. */
  newestTransactionId: bigint | null;
  /**
   * The position the events' sequence was moved up to, when it was behind
   * the stored positions (logical replication does not carry sequences);
   * otherwise `null`.
   */
  positionAdvancedTo: bigint | null;
}

/**
 * After the database was moved into a new cluster whose transaction ids
 * are lower than the history's (a dump and restore, a logical replication
 * move), makes the log usable again: it raises the log's ordering offset
 * so that the next transaction's order key is above every stored one (the
 * newest event's and every checkpoint's). Old events stay before new ones,
 * each aggregate keeps its order, and every checkpoint stays valid: no
 * projection rebuilds. It is one small update, whatever the history's
 * length. It also moves the events' position sequence past the stored
 * positions when it is behind (logical replication does not carry
 * sequences).
 *
 * Until it runs, every append, read and processor poll refuses with
 * {@linkcode TransactionIdRegressionError}. It is safe to run at any
 * time: when the log needs no rebase it changes nothing and says so
 * (`rebased: false`); concurrent calls are serialized by an advisory lock
 * and the second finds nothing to do. It waits for the transactions that
 * are writing to the log to end, and holds new appends until it commits
 * (a `SHARE` lock on the events table). Run it with the writers stopped:
 * a transaction that stays open waits it out. It needs to own the offset
 * function (`CREATE OR REPLACE`), as the role that ran the migrations does.
 *
 * @param sql A postgres.js client from `postgres(url)`.
 * @throws {ValidationError} on a bad client or option, before any SQL.
 *
 * @example After restoring a dump into a new cluster
 * ```ts ignore
 * import postgres from "postgres";
 * import { migrate, PostgresStore, rebaseLog } from "@getpup/pupsourcing/postgres";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore({ schema: "es" });
 * await migrate(sql, { store });
 * const result = await rebaseLog(sql, { store });
 * console.log(result.rebased ? `rebased, offset ${result.offset}` : "no rebase needed");
 * ```
 */
export async function rebaseLog(
  // deno-lint-ignore no-explicit-any -- accepts clients configured with any custom type map
  sql: Sql<any>,
  options?: RebaseOptions,
): Promise<RebaseResult> {
  const { store = new PostgresStore() } = checkOptions("options", options, ["store"] as const);
  requireClient("sql", sql, "the rebase runs in its own transaction");
  if (!(store instanceof PostgresStore)) {
    throw new ValidationError("options.store", "a PostgresStore", show(store));
  }
  const tables = store.tables;
  const result = await sql.begin(async (tx) => {
    // Taken before the statement that reads the keys, so that statement's
    // snapshot sees what a rebase that ran first committed.
    await tx`select pg_advisory_xact_lock(hashtextextended(${`pupsourcing rebase ${tables.logOffset}`}, 0))`;
    // Waits for every transaction that is writing to the log to end, and
    // holds new writers until the rebase commits: a writer's open
    // transaction holds its lock on the events table, so it would not take
    // the invalidation of its cached plans, and its next append would fold
    // in the old offset. A writer that starts after the commit takes its
    // lock anew, and with it the new offset.
    await tx`lock table ${table(tx, tables.events)} in share mode`;
    await tx`insert into ${table(tx, tables.logOffset)} (singleton) values (true)
      on conflict do nothing`;
    const events = table(tx, tables.events);
    // The offset in force is the function's (see ./order.ts); the table records it.
    const [row] = await tx`
      select ${tx.unsafe(offsetSql(tables))}::text as offset,
        (select transaction_id from ${events}
         order by transaction_id desc, global_position desc limit 1)::text as newest_event,
        (select transaction_id from ${table(tx, tables.checkpoints)}
         order by transaction_id desc limit 1)::text as newest_checkpoint,
        pg_snapshot_xmin(pg_current_snapshot())::text as xmin,
        pg_snapshot_xmax(pg_current_snapshot())::text as xmax`;
    const previousOffset = BigInt(row.offset);
    const keys = [row.newest_event, row.newest_checkpoint].filter((k) => k !== null).map(BigInt);
    const newest = keys.length === 0 ? null : keys.reduce((a, b) => (a > b ? a : b));
    // Every transaction that can still write has an id at or above xmin
    // (those below it have ended), so xmin + offset > newest puts every
    // later event above the history and every checkpoint.
    const needed = newest !== null && newest >= BigInt(row.xmax) + previousOffset;
    const offset = needed ? newest + 1n - BigInt(row.xmin) : previousOffset;
    if (needed) {
      await tx`update ${table(tx, tables.logOffset)}
        set transaction_id_offset = ${String(offset)}::int8, rebased_at = now()`;
      // Every session's cached plans that folded the old offset in are
      // invalidated at commit.
      await tx.unsafe(offsetFunctionSql(tables, offset));
    }
    const [moved] = await tx`
      select setval(s.name, p.last)::text as position
      from (select pg_get_serial_sequence(${quote(tables.events)}, 'global_position') as name) s,
        (select max(global_position) as last from ${events}) p
      where p.last > coalesce(pg_sequence_last_value(s.name::regclass), 0)`;
    return {
      rebased: needed,
      previousOffset,
      offset,
      newestTransactionId: newest,
      positionAdvancedTo: moved ? BigInt(moved.position) : null,
    };
  });
  store.logger?.info(result.rebased ? "rebased the log" : "the log needs no rebase", {
    previousOffset: result.previousOffset,
    offset: result.offset,
    newestTransactionId: result.newestTransactionId,
    positionAdvancedTo: result.positionAdvancedTo,
  });
  return result;
}
