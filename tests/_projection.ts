/**
 * Helpers of the projection tests: events to append, and a read model that
 * counts how many times each event was applied.
 *
 * @module
 */

import type postgres from "postgres";
import type { PersistedEvent } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import type { Projection } from "../src/projection/mod.ts";
import { within } from "./_bounds.ts";
import { json } from "./_db.ts";

/** Appends `perAggregate` events to each of `aggregates` aggregates `${prefix}-i`. */
export async function appendEvents(
  sql: postgres.Sql,
  store: PostgresStore,
  options: {
    prefix?: string;
    aggregates: number;
    perAggregate: number;
    aggregateType?: string;
    eventType?: string;
  },
): Promise<PersistedEvent[]> {
  const all: PersistedEvent[] = [];
  for (let a = 0; a < options.aggregates; a++) {
    const result = await store.append(
      sql,
      Array.from({ length: options.perAggregate }, (_, i) => ({
        aggregateType: options.aggregateType ?? "Account",
        aggregateId: `${options.prefix ?? "acc"}-${a}`,
        eventType: options.eventType ?? "Deposited",
        payload: json({ i }),
      })),
    );
    all.push(...result.events);
  }
  return all;
}

/** The qualified name of a table in the store's schema. */
export function inSchema(store: PostgresStore, name: string): string {
  return `${store.tables.schema}.${name}`;
}

/**
 * Creates the read model `applied`: one row per event id with the number
 * of times it was applied, so a double apply shows as `times = 2` instead
 * of failing on a unique key.
 */
export async function createReadModel(sql: postgres.Sql, store: PostgresStore): Promise<void> {
  await sql.unsafe(`
    create table ${inSchema(store, "applied")} (
      event_id uuid primary key,
      projection text not null,
      aggregate_id text not null,
      aggregate_version bigint not null,
      global_position bigint not null,
      times int not null default 1
    )`);
}

/** Writes each event to `applied` through the batch's transaction. */
export function readModelProjection(
  store: PostgresStore,
  name: string,
  extra: Partial<Projection> = {},
): Projection {
  const table = inSchema(store, "applied");
  return {
    name,
    async handle(event, tx) {
      await tx.unsafe(
        `insert into ${table} (event_id, projection, aggregate_id, aggregate_version, global_position)
         values ($1, $2, $3, $4, $5)
         on conflict (event_id) do update set times = ${table}.times + 1`,
        [
          event.eventId,
          name,
          event.aggregateId,
          String(event.aggregateVersion),
          String(event.globalPosition),
        ],
      );
    },
    ...extra,
  };
}

/** What `applied` holds: event id to times applied. */
export async function appliedTimes(
  sql: postgres.Sql,
  store: PostgresStore,
): Promise<Map<string, number>> {
  const rows = await sql.unsafe(
    `select event_id, times from ${inSchema(store, "applied")} order by global_position`,
  );
  return new Map(rows.map((row) => [row.event_id as string, row.times as number]));
}

/** The projection's checkpoint rows, by segment. */
export async function checkpointRows(
  sql: postgres.Sql,
  store: PostgresStore,
  projection: string,
): Promise<{ segment: number; segmentCount: number; tx: bigint; position: bigint }[]> {
  const rows = await sql.unsafe(
    `select segment, segment_count, transaction_id::text as tx, global_position
     from ${store.tables.checkpoints} where projection_name = $1 order by segment`,
    [projection],
  );
  return rows.map((row) => ({
    segment: row.segment as number,
    segmentCount: row.segment_count as number,
    tx: BigInt(row.tx as string),
    position: BigInt(row.global_position as string),
  }));
}

/** A promise with its resolve function outside (Node 20 has no Promise.withResolvers). */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export { waitUntil, within } from "./_bounds.ts";

/** How long a run in `"until_caught_up"` mode may take in these tests. */
export const CATCH_UP_MS = 20_000;

/**
 * Bounds a run in `"until_caught_up"` mode: a processor that never
 * catches up fails the test, naming what it was doing, instead of hanging it.
 */
export function caughtUp<T>(run: Promise<T>, what = "the processor to catch up"): Promise<T> {
  return within(run, CATCH_UP_MS, what);
}
