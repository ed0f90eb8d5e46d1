/**
 * The statements a projection worker sends on the events table (the idle
 * poll, and the batch's lock-and-read) walk the log's index and never scan
 * the table: a young table (created a moment ago, never analyzed) is what
 * every new deployment has, and a plan cached on it would go on scanning
 * the table as it grows. Each statement is captured as the processor sends
 * it, then planned again with the same parameters under custom and
 * generic plans, on that young table, an empty one and a filled, analyzed
 * one. (The idle poll's check for events behind the horizon used to scan
 * the table on every poll, whatever its age.)
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { nodes, type PlanNode } from "./_plans.ts";
import { appendEvents } from "./_projection.ts";
import { sizeClass } from "../src/postgres/internal.ts";

/** A statement as postgres.js sent it. */
interface Sent {
  query: string;
  parameters: unknown[];
}

/** A parameter as an SQL literal, for `EXECUTE` (postgres.js sends them untyped, as text). */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "null";
  return `'${String(value).replaceAll("'", "''")}'`;
}

describe("a projection worker's plans on the events table", () => {
  let db: TestDb;
  let store: PostgresStore;
  const sent = new Map<string, Sent>();

  before(async () => {
    db = await setupDatabase();
    store = await db.freshStore();
    const events = store.tables.events.split(".").pop()!;
    const sql = db.client({
      debug: (_connection: number, query: string, parameters: unknown[]) => {
        if (query.includes(`"${events}"`)) sent.set(query, { query, parameters });
      },
    });
    // A young table: a few events, never analyzed.
    await appendEvents(db.sql, store, { aggregates: 5, perAggregate: 2 });
    await appendEvents(db.sql, store, { aggregates: 2, perAggregate: 1, aggregateType: "Other" });
    const runs: [ConstructorParameters<typeof ProjectionProcessor>[2], object][] = [
      [{}, {}],
      [{ partitionKey: 1, totalPartitions: 4 }, { aggregateTypes: ["Account"] }],
      [{ segments: 1 }, { eventTypes: ["Deposited"] }],
    ];
    for (const [i, [config, scope]] of runs.entries()) {
      const outcome = await new ProjectionProcessor(sql, store, config).run(
        { name: `plans_${i}`, handle() {}, ...scope },
        { mode: "until_caught_up" },
      );
      assert.equal(outcome.status, "caught_up");
    }
  });
  after(() => db?.close());

  /** The nodes of `statement`'s plan under `mode` that read the events table. */
  async function eventsScans(statement: Sent, mode: string): Promise<PlanNode[]> {
    const events = store.tables.events.split(".").pop();
    return await db.sql.begin(async (tx: postgres.TransactionSql) => {
      await tx.unsafe(`set local plan_cache_mode = ${mode}`);
      await tx.unsafe(`prepare worker_statement as ${statement.query}`);
      const [row] = await tx.unsafe(
        `explain (format json) execute worker_statement(${
          statement.parameters.map(literal).join(", ")
        })`,
      );
      await tx.unsafe("deallocate worker_statement");
      const plan = (row["QUERY PLAN"] as { Plan: PlanNode }[])[0].Plan;
      return nodes(plan).filter((n) => n["Relation Name"] === events);
    });
  }

  it("polls and reads batches through the log's index, under custom and generic plans", async () => {
    const { events } = store.tables;
    const statements = [...sent.values()];
    // The idle poll, and the batch's lock-and-read: one text per run (its
    // scope and segment count make the text).
    assert.ok(statements.some((s) => /\bpending\b/.test(s.query)), "captured the idle poll");
    assert.equal(
      statements.filter((s) => /for update of c skip locked/.test(s.query)).length,
      3,
      "captured each run's batch statement",
    );
    const stages: [string, () => Promise<unknown>][] = [
      ["a young table", async () => {}],
      ["an empty table", () => db.sql`truncate ${db.sql(events)}`],
      ["a filled, analyzed table", async () => {
        await db.sql`insert into ${db.sql(events)} (aggregate_type, aggregate_id,
            aggregate_version, aggregate_id_hash, event_id, event_type, payload)
          select 'Account', i::text, 1, i, gen_random_uuid(), 'Deposited', '\\x00'::bytea
          from generate_series(1, 5000) i`;
        await db.sql`analyze ${db.sql(events)}`;
      }],
    ];
    for (const [stage, prepare] of stages) {
      await prepare();
      // While the table is young, the planner may read the few rows in range
      // through a bitmap of the index and sort them; once it has rows and
      // statistics, only an ordered walk of the index that stops at the limit.
      const allowed = stage === "a filled, analyzed table"
        ? /^Index( Only)? Scan$/
        : /^(Index( Only)? Scan|Bitmap Heap Scan)$/;
      for (const mode of ["force_custom_plan", "force_generic_plan"]) {
        for (const statement of statements) {
          const scans = await eventsScans(statement, mode);
          const what = `${stage}, ${mode}: "${
            statement.query.replace(/\s+/g, " ").slice(0, 60)
          }..."`;
          assert.ok(scans.length > 0, `${what} reads the events table`);
          for (const scan of scans) {
            assert.match(
              scan["Node Type"],
              allowed,
              `${what} reads the events table by ${scan["Node Type"]}`,
            );
          }
        }
      }
    }
  });
});

describe("a projection worker's batch plan and the events table's size", () => {
  let db: TestDb;
  after(() => db?.close());

  it("is kept while the table is under twice its size, and made again once it has doubled", async () => {
    db = await setupDatabase();
    const store = await db.freshStore();
    const { events } = store.tables;
    // One connection: its prepared statements are the worker's.
    const sentClasses: number[] = [];
    const sql = db.client({
      max: 1,
      debug: (_connection: number, query: string) => {
        const planned = /planned for an events table of 2\^(\d+) pages/.exec(query);
        if (planned && query.includes("for update of c skip locked")) {
          sentClasses.push(Number(planned[1]));
        }
      },
    });
    const pages = async () => {
      const [{ size }] = await db.sql`select pg_relation_size(${events}::regclass) / 8192 as size`;
      return Number(size);
    };
    const processor = new ProjectionProcessor(sql, store, { batchSize: 5 });
    const handled = new Map<bigint, number>();
    const catchUp = async () => {
      const outcome = await processor.run({
        name: "sized",
        handle(event) {
          handled.set(event.globalPosition, (handled.get(event.globalPosition) ?? 0) + 1);
        },
      }, { mode: "until_caught_up" });
      assert.equal(outcome.status, "caught_up");
    };

    // A young table: 40 events, 8 batches or more, all of one class.
    await appendEvents(db.sql, store, { aggregates: 40, perAggregate: 1 });
    await catchUp();
    const young = sizeClass(await pages());
    assert.ok(sentClasses.length >= 8, `ran ${sentClasses.length} batches`);
    assert.equal(sentClasses.at(-1), young, "the young table's batches name its class");

    // The table grows past twice its size, with no ANALYZE to refresh plans.
    await db.sql`insert into ${db.sql(events)} (aggregate_type, aggregate_id,
        aggregate_version, aggregate_id_hash, event_id, event_type, payload)
      select 'Account', 'bulk-' || i, 1, i, gen_random_uuid(), 'Deposited',
        convert_to(repeat('x', 200), 'UTF8')
      from generate_series(1, 3000) i`;
    const grown = sizeClass(await pages());
    assert.ok(grown > young, `the table grew from class ${young} to ${grown}`);
    sentClasses.length = 0;
    await catchUp();

    // The first batch still runs the young plan and reports the size; every
    // later one runs the statement of the grown table's class.
    assert.ok(sentClasses.length > 6, `ran ${sentClasses.length} batches`);
    assert.equal(sentClasses[0], young);
    assert.deepEqual(new Set(sentClasses.slice(1)), new Set([grown]));
    // Every event handled once, across the switch.
    const [{ total }] = await db.sql`select count(*)::int as total from ${db.sql(events)}`;
    assert.equal(handled.size, total);
    assert.ok([...handled.values()].every((times) => times === 1), "no event handled twice");
    // And that statement's plan is kept, not made again on each batch
    // (PostgreSQL counts plans from version 14 on).
    const [{ version }] = await sql`select current_setting('server_version_num')::int as version`;
    if (version >= 140000) {
      const [kept] = await sql`select generic_plans::int as generic from pg_prepared_statements
        where statement like ${`%planned for an events table of 2^${grown} pages%`}`;
      assert.ok(kept.generic > 0, "the grown class's statement runs a kept (generic) plan");
    }
  });
});
