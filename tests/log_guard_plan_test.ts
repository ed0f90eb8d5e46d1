/**
 * The regression guard that every append, read and poll carries (see
 * src/postgres/order.ts) looks at the log once per session and second,
 * and that look is one descent of the log's index. Its question, "is any
 * key at or above the next one?", matches no row while all is well, and a
 * plan that scans the events table for it reads the whole table. The
 * planner picks that plan readily: under EXISTS, or with a bound that is
 * not a plan-time constant, it guesses that a third of the table matches
 * and that a scan stops early.
 *
 * The guard is planned here as the statements plan it, with the cursor as
 * a parameter, under custom and generic plans, on a new empty table and on
 * a filled one. (On a table analyzed while empty every plan scans it,
 * whatever the query: that is why the look is not made on every
 * statement.)
 *
 * @module
 */

import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { regressionGuardSql, regressionVerdictSql } from "../src/postgres/order.ts";
import { setupDatabase, type TestDb } from "./_db.ts";

/** The plan nodes of an `EXPLAIN (FORMAT JSON)` result, flattened. */
interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

describe("the regression guard's plan", () => {
  let db: TestDb;
  let store: PostgresStore;

  before(async () => {
    db = await setupDatabase();
    store = await db.freshStore();
  });
  after(() => db?.close());

  /** The guard's plan nodes on the events table, under `mode`. */
  async function eventsScans(mode: string): Promise<PlanNode[]> {
    const [before, after] = regressionGuardSql(store.tables);
    return await db.sql.begin(async (tx: postgres.TransactionSql) => {
      await tx.unsafe(`set local plan_cache_mode = ${mode}`);
      await tx.unsafe(`prepare guard(text) as select ${before}$1::text::xid8${after}`);
      const [row] = await tx.unsafe(`explain (format json) execute guard('1')`);
      await tx.unsafe("deallocate guard");
      const plan = (row["QUERY PLAN"] as { Plan: PlanNode }[])[0].Plan;
      return onEvents(plan);
    });
  }

  /** The plan's nodes that read the events table. */
  function onEvents(plan: PlanNode): PlanNode[] {
    const events = store.tables.events.split(".").pop();
    return nodes(plan).filter((n) => n["Relation Name"] === events);
  }

  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    it(`descends the log's index, never scans the table (${mode})`, async () => {
      const { events } = store.tables;
      const stages: [string, () => Promise<unknown>][] = [
        ["an empty table", () => db.sql`truncate ${db.sql(events)}`],
        ["a filled, analyzed table", async () => {
          await db.sql`insert into ${db.sql(events)} (aggregate_type, aggregate_id,
              aggregate_version, aggregate_id_hash, event_id, event_type, payload)
            select 'Order', i::text, 1, 0, gen_random_uuid(), 'E', '\\x00'::bytea
            from generate_series(1, 5000) i`;
          await db.sql`analyze ${db.sql(events)}`;
        }],
      ];
      for (const [stage, prepare] of stages) {
        await prepare();
        const scans = await eventsScans(mode);
        assert.ok(scans.length > 0, `${stage}: the guard's plan reads the events table`);
        for (const scan of scans) {
          assert.match(
            scan["Node Type"],
            /^Index( Only)? Scan$/,
            `${stage}: the guard reads the events table by ${scan["Node Type"]}`,
          );
        }
      }
    });
  }

  it("looks at the log once per session and second, and a session trusts a look for a second", async () => {
    const session = db.client({ max: 1 });
    const other = db.client({ max: 1 });
    const [before, after] = regressionVerdictSql(store.tables);
    const verdict = async (sql: postgres.Sql) =>
      (await sql.unsafe(`select ${before}null${after} as verdict`))[0].verdict;
    const looks = async (sql: postgres.Sql) => {
      const [row] = await sql.unsafe(
        `explain (analyze, format json) select ${before}null${after}`,
      );
      const plan = (row["QUERY PLAN"] as { Plan: PlanNode }[])[0].Plan;
      return onEvents(plan).reduce((sum, n) => sum + (n["Actual Loops"] ?? 0), 0);
    };
    await db.sql`truncate ${db.sql(store.tables.events)}`;

    assert.equal(await looks(session), 1, "a new session looks at the log");
    assert.equal(await looks(session), 0, "the same session within the second does not");
    assert.equal(await looks(other), 1, "another session looks for itself");

    // Foreign history under a live session: a key far above any this
    // cluster has handed out.
    await db.sql`insert into ${db.sql(store.tables.events)} (transaction_id, aggregate_type,
        aggregate_id, aggregate_version, aggregate_id_hash, event_id, event_type, payload)
      values ((pg_current_xact_id()::text::int8 + 1000000)::text::xid8, 'Order', 'foreign', 1, 0,
        gen_random_uuid(), 'E', '\\x00'::bytea)`;
    await waitUntil(
      "the session that trusted its last look to refuse the foreign log",
      async () => String(await verdict(session)).startsWith("log "),
      5_000,
    );
    assert.match(String(await verdict(db.client({ max: 1 }))), /^log \d+ \d+$/);
  });
});
