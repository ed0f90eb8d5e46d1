/**
 * Helpers of the poison-event tests: a read model that detects any event
 * applied twice, missed or out of its aggregate's order, and a handler
 * that fails on a fixed set of events.
 *
 * @module
 */

import type postgres from "postgres";
import type { PersistedEvent } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import type { ErrorPolicy, Projection } from "../src/projection/mod.ts";
import { inSchema } from "./_projection.ts";

/**
 * Creates `balances` (per projection and aggregate: the last version
 * applied and the sum of versions) and `violations` (events that came
 * out of order, twice, or after a gap).
 */
export async function createBalances(sql: postgres.Sql, store: PostgresStore): Promise<void> {
  await sql.unsafe(`
    create table ${inSchema(store, "balances")} (
      projection text not null,
      aggregate_id text not null,
      version bigint not null,
      total bigint not null,
      primary key (projection, aggregate_id));
    create table ${inSchema(store, "violations")} (
      projection text not null, event_id uuid not null, version bigint not null)`);
}

/** The aggregate number of `acc-<n>`. */
function number(event: PersistedEvent): number {
  return Number(event.aggregateId.slice(event.aggregateId.lastIndexOf("-") + 1));
}

/** Events whose handler always fails: version 5 of every 50th aggregate from 7. */
export function isPoison(event: PersistedEvent): boolean {
  return number(event) % 50 === 7 && event.aggregateVersion === 5n;
}

/** Events whose handler fails its first two calls: version 3 of every 50th aggregate from 13. */
export function isFlaky(event: PersistedEvent): boolean {
  return number(event) % 50 === 13 && event.aggregateVersion === 3n;
}

/**
 * The balances projection `name`. With `failing`, it throws on poison
 * events, and on flaky ones the first two times this process calls it.
 * `slowMs` sleeps in the database after each event, so kills land inside
 * batches.
 */
export function balanceProjection(
  store: PostgresStore,
  name: string,
  options: { failing: boolean; onError?: ErrorPolicy; slowMs?: number },
): Projection {
  const balances = inSchema(store, "balances");
  const violations = inSchema(store, "violations");
  const calls = new Map<bigint, number>();
  return {
    name,
    onError: options.onError,
    async handle(event, tx) {
      if (options.failing) {
        const n = (calls.get(event.globalPosition) ?? 0) + 1;
        calls.set(event.globalPosition, n);
        if (isPoison(event)) throw new Error(`poison ${event.aggregateId}`);
        if (isFlaky(event) && n <= 2) throw new Error(`flaky ${event.aggregateId}`);
      }
      const version = String(event.aggregateVersion);
      const moved = event.aggregateVersion === 1n
        ? await tx.unsafe(
          `insert into ${balances} values ($1, $2, 1, 1) on conflict do nothing returning 1`,
          [name, event.aggregateId],
        )
        : await tx.unsafe(
          `update ${balances} set version = $3, total = total + $3
           where projection = $1 and aggregate_id = $2 and version = $3 - 1 returning 1`,
          [name, event.aggregateId, version],
        );
      if (moved.length === 0) {
        await tx.unsafe(`insert into ${violations} values ($1, $2, $3)`, [
          name,
          event.eventId,
          version,
        ]);
      }
      if (options.slowMs) await tx`select pg_sleep(${options.slowMs / 1000})`;
    },
  };
}

/** A projection's balances, by aggregate: `[version, total]`. */
export async function balancesOf(
  sql: postgres.Sql,
  store: PostgresStore,
  name: string,
): Promise<Map<string, [bigint, bigint]>> {
  const rows = await sql.unsafe(
    `select aggregate_id, version, total from ${inSchema(store, "balances")}
     where projection = $1 order by aggregate_id`,
    [name],
  );
  return new Map(
    rows.map((r) => [r.aggregate_id as string, [BigInt(r.version), BigInt(r.total)]]),
  );
}

/** How many violations the projection recorded. */
export async function violationsOf(
  sql: postgres.Sql,
  store: PostgresStore,
  name: string,
): Promise<number> {
  const [{ n }] = await sql.unsafe(
    `select count(*)::int as n from ${inSchema(store, "violations")} where projection = $1`,
    [name],
  );
  return n as number;
}

/** The parked rows of a projection as `position → [status, reason]`. */
export async function parkedOf(
  sql: postgres.Sql,
  store: PostgresStore,
  name: string,
): Promise<Map<bigint, [string, string]>> {
  const rows = await sql.unsafe(
    `select global_position, status, reason from ${store.tables.parkedEvents}
     where projection_name = $1`,
    [name],
  );
  return new Map(
    rows.map((r) => [BigInt(r.global_position), [r.status as string, r.reason as string]]),
  );
}
