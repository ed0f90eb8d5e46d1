/**
 * No append reads the events table sequentially, whatever plan PostgreSQL
 * makes of its statements. postgres.js prepares statements, and after five
 * runs PostgreSQL may keep one generic plan per connection: one made while
 * the table was young (created, truncated, emptied) kept scanning the
 * whole table on every append as the table grew (W1 with caller-chosen
 * ids: 0.34 of the hand-written statement).
 *
 * The test records every statement the store sends for every shape of
 * append (one aggregate: created, upserted, updated; one event or several;
 * with and without the optional columns, caller-chosen ids, a caller's
 * transaction and its NOTIFY; several aggregates; an exact retry and a
 * duplicate, on a pool and in a transaction), brings the tables into each
 * young state, and asks EXPLAIN EXECUTE for each statement's plan under
 * `plan_cache_mode` forced to custom and to generic plans.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { DuplicateEventError, type Event, type ExpectedVersion, uuidv7 } from "../mod.ts";
import { migrate, type PostgresStore } from "../src/postgres/mod.ts";
import { quote } from "../src/postgres/tables.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";

/** A statement as the store sent it. */
interface Sent {
  text: string;
  parameters: unknown[];
}

describe("append plans", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** Every statement the store sends that names its events table, once per text. */
  async function recordStatements(store: PostgresStore): Promise<Sent[]> {
    const events = quote(store.tables.events);
    const sent = new Map<string, Sent>();
    const sql = db.client({
      max: 2,
      debug: (_connection: number, text: string, parameters: unknown[]) => {
        if (text.includes(events) && !sent.has(text)) sent.set(text, { text, parameters });
      },
    });
    const optional = { metadata: { a: 1 }, traceId: "t", correlationId: "c", causationId: "k" };
    let n = 0;
    const batch = (count: number, fields: Partial<Event>, ids: boolean) =>
      Array.from(
        { length: count },
        () => event(`o-${n}`, { ...fields, ...(ids ? { eventId: uuidv7() } : {}) }),
      );
    for (const count of [1, 3]) {
      for (const fields of [{}, optional]) {
        for (const ids of [false, true]) {
          for (const client of ["pool", "transaction"] as const) {
            const run = (work: (on: postgres.Sql | postgres.TransactionSql) => Promise<unknown>) =>
              client === "pool" ? work(sql) : sql.begin(work);
            n++;
            const expectations: ExpectedVersion[] = ["no_stream", "any", 2n * BigInt(count)];
            for (const expectedVersion of [...expectations, "stream_exists" as const]) {
              await run((on) => store.append(on, batch(count, fields, ids), { expectedVersion }));
            }
            n++;
            await run((on) =>
              store.appendMany(on, [
                { events: batch(count, fields, ids), expectedVersion: "no_stream" },
                { events: batch(count, fields, ids).map((e) => ({ ...e, aggregateId: `p-${n}` })) },
              ])
            );
          }
        }
      }
    }
    // The error paths: an exact retry and a duplicate, on a pool and in a
    // transaction (where stored ids are skipped, then undone).
    n++;
    const stored = batch(2, optional, true);
    await store.append(sql, stored, { expectedVersion: "no_stream" });
    for (const client of ["pool", "transaction"] as const) {
      const run = (work: (on: postgres.Sql | postgres.TransactionSql) => Promise<unknown>) =>
        client === "pool" ? work(sql) : sql.begin(work);
      await run((on) => store.append(on, stored, { expectedVersion: "any" }));
      n++;
      const reused = event(`o-${n}`, { eventId: stored[0].eventId });
      await assert.rejects(
        run((on) => store.append(on, [reused, ...batch(1, {}, true)])),
        DuplicateEventError,
      );
    }
    await sql.end();
    return [...sent.values()];
  }

  /** The lines of each plan node that reads `table` (unqualified, as EXPLAIN names it) sequentially, for `mode`. */
  async function sequentialScans(
    sql: postgres.Sql,
    statements: Sent[],
    table: string,
    mode: "force_custom_plan" | "force_generic_plan",
  ): Promise<string[]> {
    const found: string[] = [];
    await sql.unsafe(`set plan_cache_mode = ${mode}`);
    for (const [k, { text, parameters }] of statements.entries()) {
      await sql.unsafe(`prepare p${k} as ${text}`);
      const values = parameters.map((v) =>
        v === null || v === undefined ? "null" : `'${String(v).replace(/'/g, "''")}'`
      );
      const plan = (await sql.unsafe(`explain execute p${k}(${values.join(", ")})`))
        .map((row) => row["QUERY PLAN"] as string);
      await sql.unsafe(`deallocate p${k}`);
      const scans = plan.filter((line) => line.includes(`Seq Scan on ${table} `));
      if (scans.length > 0) found.push(`${mode}: ${text}\n${scans.join("\n")}`);
    }
    return found;
  }

  it("no statement of any append reads the events table sequentially", async () => {
    const store = await db.freshStore();
    const statements = await recordStatements(store);
    assert.ok(statements.length >= 20, `recorded ${statements.length} statements`);
    const { events, aggregateHeads } = store.tables;
    const sql = db.client({ max: 1 });
    const states: [string, () => Promise<void>][] = [
      ["created", async () => {
        await sql.unsafe(`drop schema ${quote(store.tables.schema!)} cascade`);
        await migrate(sql, { store });
      }],
      ["emptied by TRUNCATE after 5,000 events and ANALYZE", async () => {
        await fill(sql, store);
        await sql.unsafe(`truncate ${quote(events)}, ${quote(aggregateHeads)}`);
      }],
      ["emptied by DELETE after 5,000 events and ANALYZE", async () => {
        await fill(sql, store);
        await sql.unsafe(`delete from ${quote(events)}`);
        await sql.unsafe(`delete from ${quote(aggregateHeads)}`);
      }],
    ];
    const found: string[] = [];
    for (const [state, enter] of states) {
      await enter();
      for (const mode of ["force_custom_plan", "force_generic_plan"] as const) {
        const scans = await sequentialScans(sql, statements, unqualified(events), mode);
        found.push(...scans.map((scan) => `${state}, ${scan}`));
      }
    }
    assert.deepEqual(found, [], `sequential scans of the events table:\n${found.join("\n\n")}`);
  });

  it("no statement of any append looks up event ids by reading the table, even analyzed empty", async () => {
    // Analyzed while empty, a table has no pages: a sequential scan costs
    // nothing, and PostgreSQL plans one for every lookup of it, index or
    // not (even the log's one-row guard, until the next ANALYZE replaces
    // the plans). What must never happen is a plan that reads the table to
    // ask which event ids are stored: that plan made the appends slower as
    // the table grew.
    const store = await db.freshStore();
    // The error paths' lookups are sent unprepared, so they are planned
    // for the table as it is on each call (a scan of no pages, here) and
    // never kept: the prepared statements are the ones to hold to this.
    const statements = (await recordStatements(store))
      .filter(({ text }) => !text.startsWith("select e.* from unnest"));
    const sql = db.client({ max: 1 });
    await sql.unsafe(
      `truncate ${quote(store.tables.events)}, ${quote(store.tables.aggregateHeads)}`,
    );
    await sql.unsafe(`analyze ${quote(store.tables.events)}`);
    const found: string[] = [];
    for (const mode of ["force_custom_plan", "force_generic_plan"] as const) {
      const scans = await sequentialScans(sql, statements, unqualified(store.tables.events), mode);
      found.push(
        ...scans.filter((scan) => scan.split("\n").slice(1).join("\n").includes("event_id")),
      );
    }
    assert.deepEqual(found, [], `event ids looked up by a scan:\n${found.join("\n\n")}`);
  });
});

/** A table's name without its schema. */
function unqualified(table: string): string {
  return table.split(".").at(-1)!;
}

/** 5,000 events over 500 aggregates, then ANALYZE: a table that had a life. */
async function fill(sql: postgres.Sql, store: PostgresStore): Promise<void> {
  const { events, aggregateHeads } = store.tables;
  await sql.unsafe(`
    insert into ${quote(events)} (aggregate_type, aggregate_id, aggregate_version,
      aggregate_id_hash, event_id, event_type, payload)
    select 'Order', 'f-' || (i % 500), i / 500 + 1, 0, gen_random_uuid(), 'E', '\\x00'
    from generate_series(0, 4999) as i`);
  await sql.unsafe(`
    insert into ${quote(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
    select 'Order', 'f-' || i, 10 from generate_series(0, 499) as i`);
  await sql.unsafe(`analyze ${quote(events)}`);
  await sql.unsafe(`analyze ${quote(aggregateHeads)}`);
}
