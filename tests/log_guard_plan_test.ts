/**
 * The regression guard that every append, read and poll carries (see
 * src/postgres/order.ts) looks at the log once per session and second,
 * through a function, and that look is one descent of the log's index.
 * Its question, "is any key at or above the next one?", matches no row
 * while all is well, and a plan that scans the events table for it reads
 * the whole table. The planner picks that plan readily: under EXISTS, or
 * with a bound that is not a plan-time constant, it guesses that a third
 * of the table matches and that a scan stops early; and a cached plan made
 * while the table was young keeps scanning it as it grows.
 *
 * Here: the guard's own plan, under custom and generic plans, never
 * touches the events table (the look is out of it); the look's query, as
 * the function plans it on each call, descends the index on a new empty
 * table, a filled one, and one analyzed while empty and filled since; and
 * a session looks once, then trusts its look for a second.
 *
 * @module
 */

import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { lookSql, regressionGuardSql, regressionVerdictSql } from "../src/postgres/order.ts";
import { insertForeignEvent, setupDatabase, type TestDb } from "./_db.ts";
import { nodes, type PlanNode } from "./_plans.ts";

describe("the regression guard's plan", () => {
  let db: TestDb;
  let store: PostgresStore;

  before(async () => {
    db = await setupDatabase();
    store = await db.freshStore();
  });
  after(() => db?.close());

  /** The nodes on the events table of `statement` (taking one xid8 as text), prepared under `mode`. */
  async function eventsScans(statement: string, mode: string): Promise<PlanNode[]> {
    return await db.sql.begin(async (tx: postgres.TransactionSql) => {
      await tx.unsafe(`set local plan_cache_mode = ${mode}`);
      await tx.unsafe(`prepare planned(text) as ${statement}`);
      const [row] = await tx.unsafe(`explain (format json) execute planned('1')`);
      await tx.unsafe("deallocate planned");
      const plan = (row["QUERY PLAN"] as { Plan: PlanNode }[])[0].Plan;
      const events = store.tables.events.split(".").pop();
      return nodes(plan).filter((n) => n["Relation Name"] === events);
    });
  }

  const fill = () =>
    db.sql`insert into ${db.sql(store.tables.events)} (aggregate_type, aggregate_id,
        aggregate_version, aggregate_id_hash, event_id, event_type, payload)
      select 'Order', i::text, 1, 0, gen_random_uuid(), 'E', '\\x00'::bytea
      from generate_series(1, 5000) i`;
  const stages: [string, () => Promise<unknown>][] = [
    ["an empty table", () => db.sql`truncate ${db.sql(store.tables.events)}`],
    ["a filled, analyzed table", async () => {
      await fill();
      await db.sql`analyze ${db.sql(store.tables.events)}`;
    }],
    ["a table analyzed while empty, filled since", async () => {
      await db.sql`truncate ${db.sql(store.tables.events)}`;
      await db.sql`analyze ${db.sql(store.tables.events)}`;
      await fill();
    }],
  ];

  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    it(`the guard's own plan does not read the events table (${mode})`, async () => {
      const [before, after] = regressionGuardSql(store.tables);
      for (const [stage, prepare] of stages) {
        await prepare();
        const scans = await eventsScans(`select ${before}$1::text::xid8${after}`, mode);
        assert.deepEqual(scans.map((n) => n["Node Type"]), [], stage);
      }
    });
  }

  it("the look, planned on each call as its function does, descends the log's index", async () => {
    for (const [stage, prepare] of stages) {
      await prepare();
      // The function's EXECUTE ... USING plans with the value known: a custom plan.
      const look = lookSql(store.tables).replace("$1", "$1::text::xid8");
      const scans = await eventsScans(look, "force_custom_plan");
      assert.ok(scans.length > 0, `${stage}: the look reads the events table`);
      for (const scan of scans) {
        assert.match(
          scan["Node Type"],
          /^Index( Only)? Scan$/,
          `${stage}: the look reads the events table by ${scan["Node Type"]}`,
        );
      }
    }
  });

  it("looks at the log once per session and second, and a session trusts a look for a second", async () => {
    const session = db.client({ max: 1 });
    const other = db.client({ max: 1 });
    const [before, after] = regressionVerdictSql(store.tables);
    const verdict = async (sql: postgres.Sql) =>
      (await sql.unsafe(`select ${before}null${after} as verdict`))[0].verdict;
    // A look that finds the log sound records its time in the session.
    const checkedAt = async (sql: postgres.Sql) =>
      (await sql`select current_setting('pupsourcing.log_checked_at', true) as at`)[0].at;
    const looks = async (sql: postgres.Sql) => {
      const was = await checkedAt(sql);
      assert.equal(await verdict(sql), null);
      return (await checkedAt(sql)) !== was;
    };
    await db.sql`truncate ${db.sql(store.tables.events)}`;

    assert.equal(await looks(session), true, "a new session looks at the log");
    assert.equal(await looks(session), false, "the same session within the second does not");
    assert.equal(await looks(other), true, "another session looks for itself");

    // Foreign history under a live session: a key far above any this
    // cluster has handed out.
    await insertForeignEvent(db.sql, store, "foreign");
    await waitUntil(
      "the session that trusted its last look to refuse the foreign log",
      async () => String(await verdict(session)).startsWith("log "),
      5_000,
    );
    assert.match(String(await verdict(db.client({ max: 1 }))), /^log \d+ \d+$/);
  });
});
