/**
 * Snapshots in PostgreSQL: the table's DDL (a numbered migration) and
 * {@linkcode PostgresSnapshotStore}. One row per aggregate and state
 * shape version, replaced only by a newer one; a read never returns a
 * snapshot ahead of the aggregate's head.
 *
 * @module
 */

import type { Snapshot, SnapshotStore } from "../es/store.ts";
import { byteaHex, type Db, table, toBigInt } from "./db.ts";
import { fromBase64 } from "./decode.ts";
import { inTransaction } from "./driver.ts";
import { missingTable } from "./missing_table.ts";
import { quote, type ResolvedTables } from "./tables.ts";

/** The snapshots table's DDL, idempotent. */
export function snapshotsSql(t: ResolvedTables): string {
  const schema = t.schema ? `CREATE SCHEMA IF NOT EXISTS ${quote(t.schema)};\n\n` : "";
  return `${schema}CREATE TABLE IF NOT EXISTS ${quote(t.snapshots)} (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    snapshot_version integer NOT NULL,
    aggregate_version bigint NOT NULL,
    state bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, snapshot_version)
);
`;
}

/**
 * Snapshots kept in the store's snapshots table (`snapshotsTable` of its
 * configuration, default `snapshots`, made by `migrate`). Give it to a
 * snapshot policy of `handleCommand` and `aggregateStream`: a snapshot is
 * then written in the transaction of the append it follows.
 *
 * @example Snapshots every 100 events
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresSnapshotStore, PostgresStore } from "@getpup/pupsourcing";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore();
 * const snapshots = { store: new PostgresSnapshotStore(store), every: 100, version: 1 };
 * ```
 */
export class PostgresSnapshotStore implements SnapshotStore<Db> {
  /** The tables of the event store whose aggregates this keeps snapshots of. */
  readonly tables: ResolvedTables;

  /** Keeps snapshots next to `store`'s events, in its snapshots table. */
  constructor(store: { readonly tables: ResolvedTables }) {
    this.tables = store.tables;
  }

  /**
   * The newest snapshot of this shape version, at or below the
   * aggregate's version.
   *
   * @example
   * ```ts ignore
   * const snapshot = await snapshots.readSnapshot(sql, "Account", "acc-1", 1);
   * ```
   */
  async readSnapshot(
    db: Db,
    aggregateType: string,
    aggregateId: string,
    snapshotVersion: number,
  ): Promise<Snapshot | undefined> {
    const [row] = await db`
      select s.aggregate_version, encode(s.state, 'base64') from ${
      table(db, this.tables.snapshots)
    } s
      join ${table(db, this.tables.aggregateHeads)} h
        on h.aggregate_type = s.aggregate_type and h.aggregate_id = s.aggregate_id
      where s.aggregate_type = ${aggregateType} and s.aggregate_id = ${aggregateId}
        and s.snapshot_version = ${snapshotVersion}
        and s.aggregate_version <= h.aggregate_version
    `.values().catch((error) => {
      throw missingTable(error, this.tables);
    });
    if (!row) return undefined;
    const [version, state] = row as [unknown, string];
    return {
      aggregateType,
      aggregateId,
      aggregateVersion: toBigInt(version),
      snapshotVersion,
      state: fromBase64(state),
    };
  }

  /**
   * Keeps `snapshot`, unless one at a newer version of the same shape is
   * kept already.
   *
   * @example
   * ```ts ignore
   * await snapshots.writeSnapshot(tx, snapshot);
   * ```
   */
  async writeSnapshot(db: Db, snapshot: Snapshot): Promise<void> {
    const t = table(db, this.tables.snapshots);
    await db`
      insert into ${t} (aggregate_type, aggregate_id, snapshot_version, aggregate_version, state)
      values (${snapshot.aggregateType}, ${snapshot.aggregateId}, ${snapshot.snapshotVersion},
        ${String(snapshot.aggregateVersion)}::bigint, ${byteaHex(snapshot.state)}::text::bytea)
      on conflict (aggregate_type, aggregate_id, snapshot_version) do update
        set aggregate_version = excluded.aggregate_version, state = excluded.state,
          created_at = now()
        where ${t}.aggregate_version < excluded.aggregate_version
    `.catch((error) => {
      throw missingTable(error, this.tables);
    });
  }

  /**
   * Runs `work` in a transaction: `db`'s own when it is one, else a new one.
   *
   * @example
   * ```ts ignore
   * await snapshots.transaction(sql, async (tx) => { ... });
   * ```
   */
  transaction<T>(db: Db, work: (tx: Db) => Promise<T>): Promise<T> {
    if (inTransaction(db)) return work(db);
    return db.begin((tx) => work(tx)) as Promise<T>;
  }
}
