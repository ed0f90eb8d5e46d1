/**
 * What holds the global log back. Readers only see events below the oldest
 * running transaction (the safe horizon); this finds that transaction and
 * counts the committed events waiting behind it.
 *
 * @module
 */

import type { Db } from "./db.ts";
import { toBigInt } from "./db.ts";
import { pendingCountColumn } from "./log.ts";
import { horizonSql } from "./order.ts";
import type { ResolvedTables } from "./tables.ts";

/**
 * A transaction that keeps the safe horizon where it is.
 *
 * @example
 * ```ts
 * import type { HorizonBlocker } from "@getpup/pupsourcing/postgres";
 *
 * const describe = (b: HorizonBlocker) => `pid ${b.pid} (${b.state}) for ${b.xidAge} xids`;
 * ```
 */
export interface HorizonBlocker {
  /** The backend's process id (`pg_terminate_backend` takes it); `null` for a prepared transaction. */
  pid: number | null;
  /** `active`, `idle in transaction`, ... or `prepared`. */
  state: string;
  /** How many transaction ids were handed out since this one started writing. */
  xidAge: number;
  /** When its transaction started, if known. */
  transactionStartedAt: Date | null;
  /** The client's `application_name`, or the prepared transaction's gid. */
  applicationName: string;
  /** The start of its current or last query. */
  query: string;
}

/**
 * The state of the safe horizon.
 *
 * @example
 * ```ts
 * import type { HorizonReport } from "@getpup/pupsourcing/postgres";
 *
 * const stuck = (r: HorizonReport) => r.pendingEvents > 0n && r.blockers.length > 0;
 * ```
 */
export interface HorizonReport {
  /**
   * The oldest transaction id still running, as an order key (plus the
   * log's ordering offset, like events' `transactionId`): events below it
   * are readable.
   */
  horizon: bigint;
  /** Committed events not readable yet because an older transaction runs. */
  pendingEvents: bigint;
  /** Writing transactions, oldest (the one holding the horizon) first. */
  blockers: HorizonBlocker[];
}

/** Reads the horizon, the events waiting behind it and the transactions holding it. */
export async function inspectHorizon(db: Db, tables: ResolvedTables): Promise<HorizonReport> {
  const [[horizon, pending]] = await db`
    select ${db.unsafe(horizonSql(tables))}, ${pendingCountColumn(db, tables)}
  `.values();
  const rows = await db`
    select pid, coalesce(state, 'unknown'), age(backend_xid), xact_start,
      coalesce(application_name, ''), left(coalesce(query, ''), 200)
    from pg_stat_activity
    where backend_xid is not null and pid <> pg_backend_pid()
    union all
    select null, 'prepared', age(transaction), prepared, gid, ''
    from pg_prepared_xacts
    order by 3 desc
  `.values();
  return {
    horizon: toBigInt(horizon),
    pendingEvents: toBigInt(pending),
    blockers: rows.map(([pid, state, age, startedAt, applicationName, query]) => ({
      pid: pid as number | null,
      state: state as string,
      xidAge: Number(age),
      transactionStartedAt: startedAt as Date | null,
      applicationName: applicationName as string,
      query: query as string,
    })),
  };
}
