import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { generateMigration, migrateGenMain } from "../src/migrate_gen.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";

const DEFAULT_FILE = /^\d{14}_init_event_sourcing\.sql$/;

/** Runs the CLI in this process, capturing what it prints. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const { write: out } = process.stdout;
  const { write: err } = process.stderr;
  // Only the CLI's text is captured: under `node --test` the runner reports
  // through stdout in binary chunks, which must still get through.
  process.stdout.write =
    ((chunk: unknown, ...rest: unknown[]) =>
      typeof chunk === "string"
        ? (stdout += chunk, true)
        : Reflect.apply(out, process.stdout, [chunk, ...rest])) as typeof out;
  process.stderr.write =
    ((chunk: unknown, ...rest: unknown[]) =>
      typeof chunk === "string"
        ? (stderr += chunk, true)
        : Reflect.apply(err, process.stderr, [chunk, ...rest])) as typeof err;
  try {
    return { code: await migrateGenMain(args), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

describe("migrate-gen", () => {
  let db: TestDb;
  let dir: string;
  before(async () => {
    db = await setupDatabase();
    dir = await mkdtemp(join(tmpdir(), "pupsourcing-migrate-gen-"));
  });
  after(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe("the SQL", () => {
    it("applies twice with the default names and makes every table", async () => {
      await db.sql.unsafe(generateMigration());
      await db.sql.unsafe(generateMigration());
      const tables = await db.sql`
        select table_name from information_schema.tables
        where table_schema = 'public' order by table_name`;
      assert.deepEqual(tables.map((t) => t.table_name), [
        "aggregate_heads",
        "events",
        "projection_checkpoints",
      ]);
      const columns = await db.sql`
        select column_name, data_type from information_schema.columns
        where table_schema = 'public' and table_name = 'events' order by ordinal_position`;
      assert.deepEqual(columns.map((c) => `${c.column_name} ${c.data_type}`), [
        "global_position bigint",
        "transaction_id xid8",
        "aggregate_type text",
        "aggregate_id text",
        "aggregate_version bigint",
        "aggregate_id_hash bigint",
        "event_id uuid",
        "event_type text",
        "event_version integer",
        "payload bytea",
        "trace_id text",
        "correlation_id text",
        "causation_id text",
        "metadata jsonb",
        "created_at timestamp with time zone",
      ]);
      const [log] = await db.sql`
        select indexdef from pg_indexes where indexname = 'events_log_idx'`;
      assert.match(log.indexdef, /\(transaction_id, global_position\)$/);
    });

    it("applies twice with custom names in a schema, all of them quoted", async () => {
      const names = {
        schema: "Billing",
        eventsTable: "BillingEvents",
        aggregateHeadsTable: "heads",
        checkpointsTable: "cp",
      };
      const text = generateMigration(names);
      await db.sql.unsafe(text);
      await db.sql.unsafe(text);

      for (
        const quoted of [
          'CREATE SCHEMA IF NOT EXISTS "Billing";',
          'CREATE TABLE IF NOT EXISTS "Billing"."BillingEvents" (',
          'CREATE TABLE IF NOT EXISTS "Billing"."heads" (',
          'CREATE TABLE IF NOT EXISTS "Billing"."cp" (',
          'CONSTRAINT "BillingEvents_event_id_key" UNIQUE (event_id)',
          'CREATE INDEX IF NOT EXISTS "BillingEvents_log_idx"',
        ]
      ) assert.ok(text.includes(quoted), quoted);
      assert.doesNotMatch(text, /\bevents\b|aggregate_heads|projection_checkpoints/);
      const tables = await db.sql`
        select table_name from information_schema.tables
        where table_schema = 'Billing' order by table_name`;
      assert.deepEqual(tables.map((t) => t.table_name), ["BillingEvents", "cp", "heads"]);
      const store = new PostgresStore(names);
      assert.deepEqual((await store.append(db.sql, [event("o-1")])).globalPositions, [1n]);
    });
  });

  describe("the command", () => {
    it("--help prints the usage and exits 0", async () => {
      const { code, stdout, stderr } = await cli(["--help"]);
      assert.equal(code, 0);
      assert.match(stdout, /^Usage: migrate-gen \[options\]/);
      for (const flag of ["--output", "--filename", "--schema", "--events-table"]) {
        assert.ok(stdout.includes(flag), flag);
      }
      assert.ok(
        stdout.includes("--aggregate-heads-table") && stdout.includes("--checkpoints-table"),
      );
      assert.equal(stderr, "");
      assert.equal((await cli(["-h"])).code, 0);
    });

    it("writes <timestamp>_init_event_sourcing.sql with the default schema", async () => {
      const output = join(dir, "default");
      const { code, stdout } = await cli(["--output", output]);
      const files = await readdir(output);

      assert.equal(code, 0);
      assert.equal(files.length, 1);
      assert.match(files[0], DEFAULT_FILE);
      assert.equal(stdout, `Generated PostgreSQL migration: ${join(output, files[0])}\n`);
      assert.equal(await readFile(join(output, files[0]), "utf8"), generateMigration());
    });

    it("honours every flag, creating the output folder", async () => {
      const output = join(dir, "nested", "migrations");
      const { code } = await cli([
        "--output",
        output,
        "--filename",
        "001_events.sql",
        "--schema",
        "es",
        "--events-table",
        "billing_events",
        "--aggregate-heads-table",
        "billing_heads",
        "--checkpoints-table",
        "billing_checkpoints",
      ]);
      assert.equal(code, 0);
      assert.deepEqual(await readdir(output), ["001_events.sql"]);
      assert.equal(
        await readFile(join(output, "001_events.sql"), "utf8"),
        generateMigration({
          schema: "es",
          eventsTable: "billing_events",
          aggregateHeadsTable: "billing_heads",
          checkpointsTable: "billing_checkpoints",
        }),
      );
    });

    for (
      const [what, args, message] of [
        ["an unknown flag", ["--adapter", "mysql"], /Unknown option '--adapter'/],
        ["a positional argument", ["migrations"], /positional/i],
        ["a flag without its value", ["--events-table"], /--events-table/],
        ["a hostile table name", ["--events-table", 'x"; drop table y'], /Invalid eventsTable/],
        ["a schema with a dot", ["--schema", "a.b"], /Invalid schema/],
        ["a filename with a slash", ["--filename", "../escape.sql"], /--filename must be a plain/],
        ["a filename with a backslash", ["--filename", "a\\b.sql"], /--filename must be a plain/],
        ["an empty filename", ["--filename", ""], /--filename must be a plain/],
        ["an empty output", ["--output", ""], /--output must not be empty/],
      ] as const
    ) {
      it(`refuses ${what} with exit code 2 and writes nothing`, async () => {
        const output = join(dir, "refused");
        const { code, stdout, stderr } = await cli(["--output", output, ...args]);
        assert.equal(code, 2);
        assert.equal(stdout, "");
        assert.match(stderr, /^migrate-gen: /);
        assert.match(stderr, message);
        assert.ok(stderr.includes("Usage: migrate-gen"));
        await assert.rejects(readdir(output), { code: "ENOENT" });
      });
    }

    it("never writes over an existing file: exit code 1", async () => {
      const output = join(dir, "existing");
      assert.equal((await cli(["--output", output, "--filename", "init.sql"])).code, 0);
      await writeFile(join(output, "init.sql"), "-- edited by hand\n");
      const { code, stdout, stderr } = await cli(["--output", output, "--filename", "init.sql"]);

      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(stderr, /^migrate-gen: cannot write .*init\.sql: /);
      assert.equal(await readFile(join(output, "init.sql"), "utf8"), "-- edited by hand\n");
    });

    const isDeno = "Deno" in globalThis;
    it("runs as a program: deno run src/migrate_gen.ts", { skip: !isDeno }, async () => {
      const script = fileURLToPath(new URL("../src/migrate_gen.ts", import.meta.url));
      const run = (cwd: string, ...args: string[]) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, ["run", "-A", script, ...args], { cwd });
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (chunk) => stdout += chunk);
          child.stderr.on("data", (chunk) => stderr += chunk);
          child.on("error", reject);
          child.on("close", (code) => resolve({ code, stdout, stderr }));
        });
      const cwd = await mkdtemp(join(dir, "cwd-"));

      const made = await run(cwd);
      assert.equal(made.code, 0, made.stderr);
      const [file] = await readdir(join(cwd, "migrations"));
      assert.match(file, DEFAULT_FILE);
      assert.equal(made.stdout, `Generated PostgreSQL migration: ${join("migrations", file)}\n`);

      const refused = await run(cwd, "--nope");
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /Unknown option '--nope'/);
      const clash = await run(cwd, "--filename", file);
      assert.equal(clash.code, 1);
      assert.match(clash.stderr, /cannot write/);
    });
  });
});
