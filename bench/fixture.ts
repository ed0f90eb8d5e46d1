/**
 * The read fixture for W4 and W5: aggregates × versions events written by
 * many transactions (one per version), so the log interleaves aggregates
 * and transaction ids the way a live system's does.
 *
 * @module
 */

import { fnv1a32 } from "../src/es/segment.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import type { BenchDb } from "./db.ts";
import { AGGREGATE_TYPE, EVENT_TYPE } from "./events.ts";
import type { Config } from "./config.ts";

/** The loaded fixture. */
export interface Fixture {
  store: PostgresStore;
  aggregateIds: string[];
  total: number;
}

/** Loads the fixture into a fresh schema. */
export async function loadFixture(db: BenchDb, config: Config): Promise<Fixture> {
  const store = await db.freshStore();
  const sql = await db.client(1);
  const { events, aggregateHeads } = store.tables;
  const aggregateIds = Array.from({ length: config.fixtureAggregates }, () => crypto.randomUUID());
  const hashes = aggregateIds.map(fnv1a32);
  await sql`set synchronous_commit = off`;
  for (let version = 1; version <= config.fixtureVersions; version++) {
    await sql`
      insert into ${sql(events)} (aggregate_type, aggregate_id, aggregate_version,
        aggregate_id_hash, event_id, event_type, payload)
      select ${AGGREGATE_TYPE}, a.id, ${version}::int8, a.hash, gen_random_uuid(), ${EVENT_TYPE},
        convert_to(format('{"orderId":"%s","line":%s,"sku":"SKU-%s","quantity":%s,'
          '"unitPrice":{"amount":%s,"currency":"EUR"},"note":"gift wrap, leave at the back door",'
          '"addedAt":"2026-11-28T04:00:00.000Z"}', a.id, ${version}::int, lpad(${version}::text, 8, '0'),
          ${version % 5 + 1}::int, ${1999 + version}::int), 'UTF8')
      from unnest(${sql.array(aggregateIds, 25)}::text[], ${sql.array(hashes, 20)}::int8[])
        as a(id, hash)`;
  }
  await sql`
    insert into ${sql(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
    select ${AGGREGATE_TYPE}, id, ${config.fixtureVersions} from unnest(${
    sql.array(aggregateIds, 25)
  }::text[]) as id`;
  await sql`set synchronous_commit = on`;
  await sql`checkpoint`.catch(() => {}); // needs superuser; only steadies the timings
  await sql`vacuum analyze ${sql(events)}`;
  await sql`vacuum analyze ${sql(aggregateHeads)}`;
  await sql.end();
  return { store, aggregateIds, total: config.fixtureAggregates * config.fixtureVersions };
}
