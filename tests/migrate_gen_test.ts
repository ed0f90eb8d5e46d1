import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateMigration, generateMigrationFiles, migrateGenMain } from "../src/migrate_gen.ts";
import { MIGRATIONS } from "../src/postgres/migrations.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { resolveTables } from "../src/postgres/tables.ts";
import { captureCli, runDenoScript } from "./_cli.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";

const FIRST_FILE = "0001_event_store.sql";

/** Runs the CLI in this process, capturing what it prints. */
const cli = (args: string[]) => captureCli(() => migrateGenMain(args));

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
        "projection_group_members",
        "projection_parked_events",
        "pupsourcing_log_offset",
        "snapshots",
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
        logOffsetTable: "offset",
        snapshotsTable: "Snapshots",
        parkedEventsTable: "Parked",
        groupMembersTable: "Members",
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
          'CREATE TABLE IF NOT EXISTS "Billing"."offset" (',
          'CREATE TABLE IF NOT EXISTS "Billing"."Snapshots" (',
          'CONSTRAINT "BillingEvents_event_id_key" UNIQUE (event_id)',
          'CREATE INDEX IF NOT EXISTS "BillingEvents_log_idx"',
        ]
      ) assert.ok(text.includes(quoted), quoted);
      assert.doesNotMatch(
        text,
        /\bevents\b|aggregate_heads|projection_checkpoints|pupsourcing_log_offset/,
      );
      const tables = await db.sql`
        select table_name from information_schema.tables
        where table_schema = 'Billing' order by table_name`;
      assert.deepEqual(tables.map((t) => t.table_name), [
        "BillingEvents",
        "Members",
        "Parked",
        "Snapshots",
        "cp",
        "heads",
        "offset",
      ]);
      const store = new PostgresStore(names);
      assert.deepEqual((await store.append(db.sql, [event("o-1")])).globalPositions, [1n]);
    });
  });

  describe("the files", () => {
    it("one numbered file per schema version, oldest first, that generateMigration joins", () => {
      const files = generateMigrationFiles();
      assert.deepEqual(
        files.map((f) => f.name),
        MIGRATIONS.map((m) => `${String(m.version).padStart(4, "0")}_${m.name}.sql`),
      );
      assert.equal(files[0].name, FIRST_FILE);
      const tables = resolveTables();
      files.forEach((file, i) => {
        assert.match(file.sql, new RegExp(`^-- pupsourcing schema version ${i + 1}: `));
        assert.ok(file.sql.endsWith(MIGRATIONS[i].sql(tables)), file.name);
      });
      assert.equal(generateMigration(), files.map((f) => f.sql).join("\n"));
    });
  });

  describe("the command", () => {
    it("--help prints the usage and exits 0", async () => {
      const { code, stdout, stderr } = await cli(["--help"]);
      assert.equal(code, 0);
      assert.match(stdout, /^Usage: pupsourcing migrate-gen \[options\]/);
      for (const flag of ["--output", "--schema", "--events-table"]) {
        assert.ok(stdout.includes(flag), flag);
      }
      assert.ok(
        stdout.includes("--aggregate-heads-table") && stdout.includes("--checkpoints-table"),
      );
      assert.equal(stderr, "");
      assert.equal((await cli(["-h"])).code, 0);
    });

    it("writes 0001_event_store.sql with the default schema", async () => {
      const output = join(dir, "default");
      const { code, stdout } = await cli(["--output", output]);
      const files = (await readdir(output)).sort(); // no order is promised

      assert.equal(code, 0);
      assert.deepEqual(files, generateMigrationFiles().map((f) => f.name));
      assert.equal(files[0], FIRST_FILE);
      assert.equal(
        stdout,
        files.map((f) => `Generated PostgreSQL migration: ${join(output, f)}\n`).join(""),
      );
      for (const file of generateMigrationFiles()) {
        assert.equal(await readFile(join(output, file.name), "utf8"), file.sql);
      }
    });

    it("honours every flag, creating the output folder", async () => {
      const output = join(dir, "nested", "migrations");
      const { code } = await cli([
        "--output",
        output,
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
      const expected = generateMigrationFiles({
        schema: "es",
        eventsTable: "billing_events",
        aggregateHeadsTable: "billing_heads",
        checkpointsTable: "billing_checkpoints",
      });
      assert.deepEqual((await readdir(output)).sort(), expected.map((f) => f.name));
      for (const file of expected) {
        assert.equal(await readFile(join(output, file.name), "utf8"), file.sql);
      }
    });

    for (
      const [what, args, message] of [
        ["an unknown flag", ["--adapter", "mysql"], /unknown flag --adapter/],
        ["a positional argument", ["migrations"], /positional/i],
        ["a flag without its value", ["--events-table"], /--events-table/],
        ["a hostile table name", ["--events-table", 'x"; drop table y'], /Invalid eventsTable/],
        ["a schema with a dot", ["--schema", "a.b"], /Invalid schema/],
        [
          "--filename: files are named by version",
          ["--filename", "x.sql"],
          /unknown flag --filename/,
        ],
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
        assert.ok(stderr.includes("Usage: pupsourcing migrate-gen"));
        await assert.rejects(readdir(output), { code: "ENOENT" });
      });
    }

    it("re-run on its folder: writes only the missing files, keeps the others", async () => {
      const output = join(dir, "rerun");
      assert.equal((await cli(["--output", output])).code, 0);
      await writeFile(join(output, "0000_app_tables.sql"), "-- the application's own\n");

      const again = await cli(["--output", output]);
      assert.equal(again.code, 0);
      assert.equal(again.stdout, `Nothing to write: every version is already in ${output}\n`);
      assert.equal(again.stderr, "");

      await rm(join(output, FIRST_FILE));
      const refill = await cli(["--output", output]);
      assert.equal(refill.code, 0);
      assert.equal(refill.stdout, `Generated PostgreSQL migration: ${join(output, FIRST_FILE)}\n`);
      assert.deepEqual(
        (await readdir(output)).sort(),
        ["0000_app_tables.sql", ...generateMigrationFiles().map((f) => f.name)].sort(),
      );
      assert.equal(
        await readFile(join(output, "0000_app_tables.sql"), "utf8"),
        "-- the application's own\n",
      );
    });

    it("never writes over an existing file that differs: exit code 1, nothing written", async () => {
      const output = join(dir, "existing");
      assert.equal((await cli(["--output", output])).code, 0);
      await writeFile(join(output, FIRST_FILE), "-- edited by hand\n");
      const { code, stdout, stderr } = await cli(["--output", output]);

      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(stderr, /^migrate-gen: .*0001_event_store\.sql differs from what these options/);
      assert.equal(await readFile(join(output, FIRST_FILE), "utf8"), "-- edited by hand\n");
    });

    it("refuses a folder made with other table names: exit code 1", async () => {
      const output = join(dir, "renamed");
      assert.equal((await cli(["--output", output])).code, 0);
      const { code, stderr } = await cli(["--output", output, "--events-table", "billing"]);

      assert.equal(code, 1);
      assert.match(stderr, /differs .*other table names/);
      assert.equal(
        await readFile(join(output, FIRST_FILE), "utf8"),
        generateMigrationFiles()[0].sql,
      );
    });

    const isDeno = "Deno" in globalThis;
    it("runs as a program: deno run src/migrate_gen.ts", { skip: !isDeno }, async () => {
      const script = fileURLToPath(new URL("../src/migrate_gen.ts", import.meta.url));
      const cwd = await mkdtemp(join(dir, "cwd-"));
      const run = (...args: string[]) => runDenoScript(script, args, { cwd });

      const made = await run();
      assert.equal(made.code, 0, made.stderr);
      assert.deepEqual(
        await readdir(join(cwd, "migrations")),
        generateMigrationFiles().map((f) => f.name),
      );
      assert.equal(
        made.stdout,
        generateMigrationFiles()
          .map((f) => `Generated PostgreSQL migration: ${join("migrations", f.name)}\n`).join(""),
      );

      const refused = await run("--nope");
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /unknown flag --nope/);
      const clash = await run("--schema", "other");
      assert.equal(clash.code, 1);
      assert.match(clash.stderr, /differs/);
    });
  });
});
