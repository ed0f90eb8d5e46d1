/**
 * A database without the schema: every entry point names the missing
 * table, the schema searched and the fix, instead of PostgreSQL's bare
 * `relation "..." does not exist`.
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import process from "node:process";
import { ProjectionError, SchemaMissingError } from "../src/es/mod.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { missingTable } from "../src/postgres/missing_table.ts";
import { resolveTables } from "../src/postgres/tables.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";

describe("a database without the schema", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  /** `table` may be several: a statement that reads them all names the first PostgreSQL misses. */
  const isMissing = (table: string | string[], schema: string | undefined) => (error: unknown) => {
    assert.ok(error instanceof SchemaMissingError, String(error));
    assert.ok([table].flat().includes(error.table), `${error.table} not in ${table}`);
    assert.equal(error.schema, schema);
    // One of the log's functions, named with (), is undefined_function.
    const code = error.table.endsWith("()") ? "42883" : "42P01";
    assert.equal(error.code, code);
    // A statement that calls a function in a missing schema fails on the schema.
    assert.ok(
      [code, "3F000"].includes((error.cause as { code?: string }).code!),
      String((error.cause as { code?: string }).code),
    );
    assert.match(error.message, /migrate\(sql, \{ store \}\)/);
    assert.match(error.message, schema ? new RegExp(`schema "${schema}"`) : /search_path/);
    return true;
  };

  it("names the missing table and the store's schema from appends, reads and the processor", async () => {
    const schema = `missing_${process.pid}`;
    const store = new PostgresStore({ schema });
    // An append names the first object its statement meets: the log offset's function or the
    // heads; with the whole schema missing, the events table.
    const heads = [
      `${schema}.pupsourcing_log_offset_value()`,
      `${schema}.aggregate_heads`,
      `${schema}.events`,
    ];
    // A log read names the events table or the log offset's function.
    const events = [`${schema}.events`, `${schema}.pupsourcing_log_offset_value()`];
    await assert.rejects(store.append(db.sql, [event("o-1")]), isMissing(heads, schema));
    await assert.rejects(
      store.appendMany(db.sql, [{ events: [event("o-1")] }]),
      isMissing(heads, schema),
    );
    await assert.rejects(
      db.sql.begin((tx) => store.append(tx, [event("o-1")])),
      isMissing(heads, schema),
    );
    await assert.rejects(store.readEvents(db.sql), isMissing(events, schema));
    await assert.rejects(
      store.readAggregateStream(db.sql, "Order", "o-1"),
      isMissing(events, schema),
    );
    await assert.rejects(store.inspectHorizon(db.sql), isMissing(events, schema));
    await assert.rejects(
      new ProjectionProcessor(db.sql, store).run({ name: "p", handle() {} }, {
        signal: AbortSignal.timeout(20_000),
      }),
      isMissing(`${schema}.projection_checkpoints`, schema),
    );
  });

  it("names the guard's verdict function (version 7) when only it is missing, and writes nothing", async () => {
    const store = await db.freshStore();
    const verdict = `${store.tables.logVerdictFunction}()`;
    await store.append(db.sql, [event("o-1")]);
    const before = await db.counts(store);
    await db.sql.unsafe(`drop function ${store.tables.logVerdictFunction}(xid8, int8)`);
    const schema = store.tables.schema;
    await assert.rejects(store.append(db.sql, [event("o-2")]), isMissing(verdict, schema));
    await assert.rejects(
      store.appendMany(db.sql, [{ events: [event("o-3")] }]),
      isMissing(verdict, schema),
    );
    await assert.rejects(store.readEvents(db.sql), isMissing(verdict, schema));
    await assert.rejects(
      new ProjectionProcessor(db.sql, store).run({ name: "p", handle() {} }, {
        signal: AbortSignal.timeout(20_000),
      }),
      isMissing(verdict, schema),
    );
    assert.deepEqual(await db.counts(store), before);
  });

  it("says the search_path was searched when the store has no schema", async () => {
    const bare = db.client({}, await db.createDatabase());
    await assert.rejects(
      new PostgresStore().append(bare, [event("o-1")]),
      isMissing(["pupsourcing_log_offset_value()", "aggregate_heads"], undefined),
    );
  });

  it("leaves a projection's own missing table to the ProjectionError", async () => {
    const store = await db.freshStore();
    await store.append(db.sql, [event("o-1")]);
    await assert.rejects(
      new ProjectionProcessor(db.sql, store).run({
        name: "read_model",
        async handle(_event, tx) {
          await tx`insert into no_such_read_model values (1)`;
        },
      }, { mode: "until_caught_up" }),
      (error) =>
        error instanceof ProjectionError && !(error.cause instanceof SchemaMissingError) &&
        (error.cause as { code?: string }).code === "42P01",
    );
  });

  it("translates only PostgreSQL's undefined_table and undefined_function on the store's own", () => {
    const tables = resolveTables({ schema: "es" });
    const raw = (relation: string) =>
      Object.assign(new Error(`relation "${relation}" does not exist`), { code: "42P01" });
    const rawFunction = (name: string) =>
      Object.assign(new Error(`function ${name} does not exist`), { code: "42883" });
    const translated = missingTable(raw("es.events"), tables);
    assert.ok(translated instanceof SchemaMissingError);
    assert.equal(translated.table, "es.events");
    const look = missingTable(rawFunction("es.events_foreign_key(xid8)"), tables);
    assert.ok(look instanceof SchemaMissingError);
    assert.equal(look.table, "es.events_foreign_key()");
    assert.match(look.message, /^Function es.events_foreign_key\(\) does not exist/);
    for (
      const other of [
        raw("events"),
        raw("es.read_model"),
        rawFunction("es.my_function(integer)"),
        { code: "42703" },
        null,
        "x",
      ]
    ) {
      assert.equal(missingTable(other, tables), other);
    }
  });
});
