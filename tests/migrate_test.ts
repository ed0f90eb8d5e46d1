import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type postgres from "postgres";
import { TransactionIdRegressionError, ValidationError } from "../src/es/errors.ts";
import { migrateMain } from "../src/migrate.ts";
import { MIGRATIONS } from "../src/postgres/migrations.ts";
import { logFunctionsSql, logVerdictSql, offsetSql } from "../src/postgres/order.ts";
import { logOffsetSql } from "../src/postgres/schema.ts";
import { migrate, PostgresStore, type TableNames } from "../src/postgres/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { captureCli, runDenoScript } from "./_cli.ts";
import {
  backendPid,
  event,
  holdTransaction,
  insertForeignEvent,
  setupDatabase,
  type TestDb,
  waitUntilBlocked,
} from "./_db.ts";
import { appendEvents } from "./_projection.ts";

const V0_SCHEMA = new URL("./fixtures/schema_v0_single_file.sql", import.meta.url);
const VERSIONS = MIGRATIONS.map((m) => m.version);
/** `0001_event_store`, as the command and the log name a version. */
const label = (m: { version: number; name: string }) =>
  `${String(m.version).padStart(4, "0")}_${m.name}`;
/** A bound for the tests that wait on locks, so a lost wake-up fails instead of hanging. */
const BOUND = { timeout: 60_000 };

/** Everything the store keeps: events, heads, checkpoints and the next position. */
async function contents(sql: postgres.Sql) {
  const [sequence] = await sql`select last_value, is_called from events_global_position_seq`;
  return {
    events: await sql`select * from events order by global_position`,
    heads: await sql`select * from aggregate_heads order by aggregate_type, aggregate_id`,
    // The columns of version 1: later versions add columns (5: the lease's times).
    checkpoints: await sql`
      select projection_name, segment, segment_count, transaction_id, global_position, owner_id,
        lease_expires_at, updated_at
      from projection_checkpoints order by projection_name, segment`,
    sequence,
  };
}

/**
 * The shape of a schema: columns with types, defaults and nullability,
 * indexes, constraints, and functions (signature, body, volatility, owner,
 * grants).
 */
async function catalog(sql: postgres.Sql, schema: string) {
  return {
    columns: await sql`
      select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull,
        pg_get_expr(d.adbin, d.adrelid) as default
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
      where n.nspname = ${schema} and c.relkind = 'r'
      order by c.relname, a.attnum`,
    indexes: await sql`
      select indexname, indexdef from pg_indexes where schemaname = ${schema} order by indexname`,
    constraints: await sql`
      select conname, pg_get_constraintdef(c.oid) as definition
      from pg_constraint c join pg_namespace n on n.oid = c.connamespace
      where n.nspname = ${schema} order by conname`,
    functions: await sql`
      select p.proname, pg_get_function_identity_arguments(p.oid) as arguments, p.prosrc,
        p.provolatile, pg_get_userbyid(p.proowner) as owner, p.proacl::text as grants
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = ${schema} order by p.proname`,
  };
}

async function tablesIn(sql: postgres.Sql, schema: string): Promise<string[]> {
  const rows = await sql`
    select table_name from information_schema.tables
    where table_schema = ${schema} order by table_name`;
  return rows.map((row) => row.table_name);
}

async function recorded(sql: postgres.Sql, table = "pupsourcing_migrations") {
  const rows = await sql.unsafe(`select version, name, applied_at from ${table} order by version`);
  for (const row of rows) assert.ok(row.applied_at instanceof Date);
  return rows.map(({ version, name }) => ({ version, name }));
}

describe("migrate", () => {
  let db: TestDb;
  /** A client on a new, empty database; `onnotice` collects notices when given. */
  const freshDatabase = async (options: postgres.Options<Record<string, never>> = {}) => {
    const url = await db.createDatabase();
    return { url, sql: db.client(options, url) };
  };
  /** A client on a new database made by the single-file schema of earlier versions. */
  const v0Database = async (options: postgres.Options<Record<string, never>> = {}) => {
    const fresh = await freshDatabase(options);
    await fresh.sql.unsafe(await readFile(V0_SCHEMA, "utf8"));
    return fresh;
  };

  before(async () => {
    db = await setupDatabase();
  });
  after(async () => {
    await db.close();
  });

  it("the list of versions: 1, 2, ... in order, each with a unique snake_case name", () => {
    assert.deepEqual(VERSIONS, MIGRATIONS.map((_, i) => i + 1));
    const names = MIGRATIONS.map((m) => m.name);
    assert.equal(new Set(names).size, names.length);
    for (const name of names) assert.match(name, /^[a-z][a-z0-9_]*$/);
    assert.equal(MIGRATIONS[0].name, "event_store");
  });

  it("creates the schema on a fresh database and records every version; then applies nothing", async () => {
    const { sql } = await freshDatabase();
    const store = new PostgresStore();

    const applied = await migrate(sql);
    assert.deepEqual(
      applied,
      MIGRATIONS.map((m) => ({ version: m.version, name: m.name, sql: m.sql(store.tables) })),
    );
    assert.deepEqual(await tablesIn(sql, "public"), [
      "aggregate_heads",
      "events",
      "projection_checkpoints",
      "projection_group_members",
      "projection_parked_events",
      "pupsourcing_log_offset",
      "pupsourcing_migrations",
      "snapshots",
    ]);
    assert.deepEqual(
      await recorded(sql),
      MIGRATIONS.map(({ version, name }) => ({ version, name })),
    );
    assert.deepEqual(await migrate(sql, { store }), []);
    assert.deepEqual((await store.append(sql, [event("o-1")])).globalPositions, [1n]);
  });

  it("upgrades a database made by the single-file schema in place: every event and checkpoint kept", async () => {
    const notices: string[] = [];
    const { sql } = await v0Database({ onnotice: (notice) => notices.push(notice.message) });
    const store = new PostgresStore();
    const processor = new ProjectionProcessor(sql, store, { segments: 4 });
    const seen: string[] = [];
    const counter = {
      name: "counter",
      handle: (e: { eventId: string }) => void seen.push(e.eventId),
    };
    // Events and checkpoints as earlier versions wrote them: with a log
    // offset of 0 they are the same rows, and its table and functions go again.
    await sql.unsafe(
      logOffsetSql(store.tables) + logFunctionsSql(store.tables) + logVerdictSql(store.tables),
    );
    await appendEvents(sql, store, { aggregates: 3, perAggregate: 2 });
    await processor.run(counter, { mode: "until_caught_up" });
    await sql`drop table pupsourcing_log_offset`;
    await sql`drop function pupsourcing_log_offset_value(), events_foreign_key(xid8),
      events_log_verdict(xid8, int8)`;
    assert.equal(seen.length, 6);
    const kept = await contents(sql);
    assert.equal(kept.events.length, 6);
    assert.equal(kept.checkpoints.length, 4);
    notices.length = 0;

    const applied = await migrate(sql, { store });
    assert.deepEqual(applied.map((m) => m.version), VERSIONS);
    assert.deepEqual(await contents(sql), kept);
    assert.deepEqual(
      await recorded(sql),
      MIGRATIONS.map(({ version, name }) => ({ version, name })),
    );
    // IF NOT EXISTS skips are NOTICEs, which a default client prints.
    assert.deepEqual(notices, []);
    assert.deepEqual(await migrate(sql, { store }), []);

    // The store and the processor carry on where they were.
    const [next] = (await store.append(sql, [event("o-new")])).events;
    assert.equal(next.globalPosition, 7n);
    seen.length = 0;
    await processor.run(counter, { mode: "until_caught_up" });
    assert.deepEqual(seen, [next.eventId]);
  });

  it("a custom schema and table names, quoted, with their own migrations table", async () => {
    const { sql } = await freshDatabase();
    const names: TableNames = {
      schema: "Billing",
      eventsTable: "Events",
      aggregateHeadsTable: "heads",
      checkpointsTable: "cp",
      migrationsTable: "SchemaVersions",
      logOffsetTable: "Offset",
      snapshotsTable: "Snapshots",
      parkedEventsTable: "Parked",
      groupMembersTable: "Members",
    };
    const logged: unknown[] = [];
    const logger = {
      debug() {},
      info: (message: string, fields?: unknown) => logged.push({ message, fields }),
      error() {},
    };
    const store = new PostgresStore({ ...names, logger });

    assert.deepEqual((await migrate(sql, { store })).map((m) => m.version), VERSIONS);
    assert.deepEqual(
      logged,
      MIGRATIONS.map((m) => ({
        message: "applied schema version",
        fields: {
          version: m.version,
          migration: `${label(m)}`,
        },
      })),
    );
    assert.deepEqual(await tablesIn(sql, "Billing"), [
      "Events",
      "Members",
      "Offset",
      "Parked",
      "SchemaVersions",
      "Snapshots",
      "cp",
      "heads",
    ]);
    assert.deepEqual(await tablesIn(sql, "public"), []);
    assert.deepEqual(
      await recorded(sql, '"Billing"."SchemaVersions"'),
      MIGRATIONS.map(({ version, name }) => ({ version, name })),
    );
    assert.deepEqual(await migrate(sql, { store }), []);
    assert.deepEqual((await store.append(sql, [event("o-1")])).globalPositions, [1n]);

    // Another store in another schema of the same database is its own.
    const other = new PostgresStore({ ...names, schema: "Other" });
    assert.deepEqual((await migrate(sql, { store: other })).map((m) => m.version), VERSIONS);
    assert.deepEqual((await store.readEvents(sql)).length, 1);
    assert.deepEqual((await other.readEvents(sql)).length, 0);
  });

  it("version 6 keeps a rebased log's offset, and applying it again never lowers it", async () => {
    const { sql } = await freshDatabase();
    const store = new PostgresStore({ schema: "rebased" });
    // A database at version 5 whose log was rebased: the offset is in its row only.
    for (const migration of MIGRATIONS.filter((m) => m.version <= 5)) {
      await sql.unsafe(migration.sql(store.tables));
    }
    await sql`update ${sql(store.tables.logOffset)} set transaction_id_offset = 5000000`;
    await migrate(sql, { store });
    const offset = async () =>
      (await sql.unsafe(`select ${offsetSql(store.tables)}::text as offset`))[0].offset;
    assert.equal(await offset(), "5000000");

    // A row copied from elsewhere says less: the offset in force stays.
    await sql`update ${sql(store.tables.logOffset)} set transaction_id_offset = 0`;
    await sql.unsafe(MIGRATIONS.find((m) => m.version === 6)!.sql(store.tables));
    assert.equal(await offset(), "5000000");
  });

  it("a database at version 6 takes version 7 alone; its guard then refuses foreign history", async () => {
    const { sql, url } = await freshDatabase();
    const store = new PostgresStore({ schema: "six" });
    await migrate(sql, { store });
    await store.append(sql, [event("o-1")]);
    // Version 6 as it was released: no verdict function, no record of 7.
    await sql.unsafe(`drop function ${store.tables.logVerdictFunction}(xid8, int8)`);
    await sql`delete from ${sql(store.tables.migrations)} where version = 7`;

    assert.deepEqual((await migrate(sql, { store })).map((m) => m.version), [7]);
    assert.deepEqual((await store.append(sql, [event("o-2")])).globalPositions, [2n]);
    assert.equal((await store.readEvents(sql)).length, 2);
    await insertForeignEvent(sql, store);
    // A new session looks at the log first (one that just looked trusts it for a second).
    const fresh = db.client({ max: 1 }, url);
    await assert.rejects(store.append(fresh, [event("o-3")]), TransactionIdRegressionError);
    await assert.rejects(store.readEvents(fresh), TransactionIdRegressionError);
  });

  it("every version is idempotent: applying each again changes nothing", async () => {
    const { sql } = await freshDatabase();
    const store = new PostgresStore({ schema: "again" });
    await migrate(sql, { store });
    const shape = await catalog(sql, "again");
    assert.ok(shape.columns.length > 0 && shape.indexes.length > 0);
    assert.deepEqual(shape.functions.map((f) => f.proname), [
      "events_foreign_key",
      "events_log_verdict",
      "pupsourcing_log_offset_value",
    ]);

    for (const migration of MIGRATIONS) {
      await sql.unsafe(migration.sql(store.tables));
      await sql.unsafe(migration.sql(store.tables));
    }
    assert.deepEqual(await catalog(sql, "again"), shape);
  });

  it(
    "two racing calls: the other waits on the migration lock; each version is applied once",
    BOUND,
    async () => {
      const { url, sql } = await v0Database();
      const store = new PostgresStore();
      // The appends below need the log offset and its functions (versions 2, 6 and 7).
      await sql.unsafe(
        logOffsetSql(store.tables) + logFunctionsSql(store.tables) + logVerdictSql(store.tables),
      );
      await store.append(sql, [event("o-1")]);
      const first = db.client({ max: 1 }, url);
      const second = db.client({ max: 1 }, url);
      const pids = [await backendPid(first), await backendPid(second)];

      // An append in flight holds the events table: the first call, inside
      // its version's transaction, waits for it while holding the lock.
      const writer = await holdTransaction(db.client({ max: 1 }, url));
      await store.append(writer.tx, [event("o-2")]);
      const one = migrate(first, { store });
      await waitUntilBlocked(sql, [pids[0]]);
      const two = migrate(second, { store });
      await waitUntilBlocked(sql, pids);
      const [waiting] = await sql`
      select wait_event from pg_stat_activity where pid = ${pids[1]}`;
      assert.equal(waiting.wait_event, "advisory");

      await writer.commit();
      // Each version is its own transaction under the lock, so the two may
      // take turns between versions; together they apply each one once, and
      // the first, which held the lock, applies version 1.
      const [byFirst, bySecond] = await Promise.all([one, two]);
      assert.equal(byFirst[0]?.version, 1);
      assert.deepEqual(
        [...byFirst, ...bySecond].map((m) => m.version).sort((a, b) => a - b),
        VERSIONS,
      );
      assert.deepEqual(
        await recorded(sql),
        MIGRATIONS.map(({ version, name }) => ({ version, name })),
      );
      assert.equal((await store.readEvents(sql)).length, 2);
    },
  );

  it(
    "four calls at once on a fresh database: exactly one applies each version",
    BOUND,
    async () => {
      const { url, sql } = await freshDatabase();
      const clients = Array.from({ length: 4 }, () => db.client({ max: 1 }, url));
      await Promise.all(clients.map((client) => backendPid(client)));

      const results = await Promise.all(clients.map((client) => migrate(client)));
      assert.deepEqual(
        results.flat().map((m) => m.version).sort(),
        VERSIONS,
      );
      assert.deepEqual(
        await recorded(sql),
        MIGRATIONS.map(({ version, name }) => ({ version, name })),
      );
    },
  );

  it("dryRun returns the pending versions with their SQL and changes nothing", async () => {
    const { sql } = await freshDatabase();
    const store = new PostgresStore({ schema: "dry" });
    const expected = MIGRATIONS.map((m) => ({
      version: m.version,
      name: m.name,
      sql: m.sql(store.tables),
    }));

    assert.deepEqual(await migrate(sql, { store, dryRun: true }), expected);
    const [{ count }] = await sql`
      select count(*)::int as count from pg_namespace where nspname = 'dry'`;
    assert.equal(count, 0);

    await migrate(sql, { store });
    assert.deepEqual(await migrate(sql, { store, dryRun: true }), []);

    // On a database of the single-file schema: pending, and still no table.
    const v0 = await v0Database();
    assert.deepEqual(
      await migrate(v0.sql, { dryRun: true }),
      expected.map((m) => ({
        ...m,
        sql: MIGRATIONS[m.version - 1].sql(new PostgresStore().tables),
      })),
    );
    assert.deepEqual(await tablesIn(v0.sql, "public"), [
      "aggregate_heads",
      "events",
      "projection_checkpoints",
    ]);
  });

  describe("bad input is refused before any SQL", () => {
    // Any query on this client fails with a connection error, not a ValidationError.
    let nowhere: postgres.Sql;
    before(() => {
      nowhere = db.client({ max: 1, connect_timeout: 2 }, "postgres://127.0.0.1:1/nowhere");
    });
    const refuses = async (call: () => Promise<unknown>, field: string, message?: RegExp) => {
      const error = await call().then(() => undefined, (e) => e);
      assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
      assert.equal(error.field, field);
      if (message) assert.match(error.message, message);
    };

    it("options that are not an object, or an unknown key", async () => {
      // deno-lint-ignore no-explicit-any -- what a JavaScript caller may pass
      const anyOptions = (value: unknown) => value as any;
      await refuses(() => migrate(nowhere, anyOptions("dry")), "options");
      await refuses(() => migrate(nowhere, anyOptions([])), "options");
      await refuses(
        () => migrate(nowhere, anyOptions({ dryrun: true })),
        "options.dryrun",
        /did you mean "dryRun"/,
      );
      await refuses(() => migrate(nowhere, anyOptions({ schema: "es" })), "options.schema");
    });

    it("a store that is not a PostgresStore, a dryRun that is not a boolean", async () => {
      const { tables } = new PostgresStore();
      // deno-lint-ignore no-explicit-any -- what a JavaScript caller may pass
      await refuses(() => migrate(nowhere, { store: { tables } as any }), "options.store");
      // deno-lint-ignore no-explicit-any -- what a JavaScript caller may pass
      await refuses(() => migrate(nowhere, { dryRun: "yes" as any }), "options.dryRun");
    });

    it("no client, or a transaction: each version commits on its own", async () => {
      // deno-lint-ignore no-explicit-any -- what a JavaScript caller may pass
      await refuses(() => migrate(undefined as any), "sql");
      await db.sql.begin(async (tx) => {
        // deno-lint-ignore no-explicit-any -- the types already refuse it
        await refuses(() => migrate(tx as any), "sql", /tx of sql\.begin/);
      });
    });

    it("a migrations table name that is not a plain identifier", () => {
      for (const name of ['x"; drop table events; --', "a.b", "", "1st", "x".repeat(64)]) {
        assert.throws(() => new PostgresStore({ migrationsTable: name }), {
          name: "ValidationError",
          field: "migrationsTable",
        });
      }
    });
  });

  describe("the command", () => {
    /** Runs the command in this process with `env` as its environment. */
    const cli = (args: string[], env: Record<string, string> = {}) =>
      captureCli(() => migrateMain(args, env));
    const unreachable = "postgres://app:s3cret@127.0.0.1:1/app";

    it("--help prints the usage and exits 0", async () => {
      const { code, stdout, stderr } = await cli(["--help"]);
      assert.equal(code, 0);
      assert.match(stdout, /^Usage: pupsourcing migrate \[options\]/);
      for (
        const flag of [
          "--database-url",
          "--dry-run",
          "--schema",
          "--events-table",
          "--aggregate-heads-table",
          "--checkpoints-table",
          "--migrations-table",
        ]
      ) assert.ok(stdout.includes(flag), flag);
      assert.equal(stderr, "");
    });

    for (
      const [what, args, message] of [
        ["no database URL", [], /no database: pass --database-url <url> or set DATABASE_URL/],
        ["an unknown flag", ["--database-url", unreachable, "--dryrun"], /unknown flag --dryrun/],
        ["a positional argument", ["--database-url", unreachable, "up"], /positional/i],
        ["a URL that is not postgres://", ["--database-url", "mysql://x/y"], /postgres:\/\/ URL/],
        [
          "a hostile table name",
          ["--database-url", unreachable, "--events-table", 'x"; drop table y'],
          /Invalid eventsTable/,
        ],
        [
          "a migrations table with a dot",
          ["--database-url", unreachable, "--migrations-table", "a.b"],
          /Invalid migrationsTable/,
        ],
      ] as const
    ) {
      it(`refuses ${what} with exit code 2, before connecting`, async () => {
        const { code, stdout, stderr } = await cli([...args]);
        assert.equal(code, 2);
        assert.equal(stdout, "");
        assert.match(stderr, /^migrate: /);
        assert.match(stderr, message);
        assert.ok(stderr.includes("Usage: pupsourcing migrate"));
      });
    }

    it("an unreachable database: exit code 1, one line naming it and its source, no password", async () => {
      const flag = await cli(["--database-url", unreachable]);
      assert.equal(flag.code, 1);
      assert.equal(flag.stdout, "");
      assert.match(
        flag.stderr,
        /^migrate: cannot migrate 127\.0\.0\.1:1\/app, from --database-url: .*ECONNREFUSED.*\n$/,
      );
      assert.equal(flag.stderr.split("\n").length, 2);
      assert.ok(!flag.stderr.includes("s3cret"));

      const env = await cli([], { DATABASE_URL: unreachable });
      assert.equal(env.code, 1);
      assert.match(
        env.stderr,
        /^migrate: cannot migrate 127\.0\.0\.1:1\/app, from DATABASE_URL \(check DATABASE_URL, or pass --database-url\): /,
      );
    });

    it("--dry-run prints the pending SQL and changes nothing", async () => {
      const { url, sql } = await freshDatabase();
      const { code, stdout, stderr } = await cli(["--dry-run", "--schema", "es"], {
        DATABASE_URL: url,
      });
      assert.equal(code, 0, stderr);
      const tables = new PostgresStore({ schema: "es" }).tables;
      assert.equal(
        stdout,
        MIGRATIONS.map((m) => `-- ${label(m)}\n${m.sql(tables)}\n`).join(""),
      );
      assert.ok(stdout.includes('CREATE TABLE IF NOT EXISTS "es"."events"'));
      const [{ count }] = await sql`
        select count(*)::int as count from pg_namespace where nspname = 'es'`;
      assert.equal(count, 0);
    });

    it("applies with every table flag, then has nothing to apply", async () => {
      const { url, sql } = await freshDatabase();
      const args = [
        "--database-url",
        url,
        "--schema",
        "es",
        "--events-table",
        "billing_events",
        "--aggregate-heads-table",
        "billing_heads",
        "--checkpoints-table",
        "billing_checkpoints",
        "--migrations-table",
        "billing_versions",
        "--log-offset-table",
        "billing_offset",
        "--snapshots-table",
        "billing_snapshots",
        "--parked-events-table",
        "billing_parked",
        "--group-members-table",
        "billing_members",
      ];
      const first = await cli(args, { DATABASE_URL: "postgres://127.0.0.1:1/not-this-one" });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(
        first.stdout,
        MIGRATIONS.map((m) => `Applied ${label(m)}\n`)
          .join("") + "The schema is up to date.\n",
      );
      assert.deepEqual(await tablesIn(sql, "es"), [
        "billing_checkpoints",
        "billing_events",
        "billing_heads",
        "billing_members",
        "billing_offset",
        "billing_parked",
        "billing_snapshots",
        "billing_versions",
      ]);
      const again = await cli(args);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, "Nothing to apply: the schema is up to date.\n");
      const dry = await cli([...args, "--dry-run"]);
      assert.equal(dry.stdout, "-- Nothing to apply.\n");
    });

    const isDeno = "Deno" in globalThis;
    it("runs as a program: deno run src/migrate.ts", { skip: !isDeno, ...BOUND }, async () => {
      const script = fileURLToPath(new URL("../src/migrate.ts", import.meta.url));
      const { url, sql } = await freshDatabase();
      const env = { ...process.env, DATABASE_URL: url } as Record<string, string>;

      const made = await runDenoScript(script, [], { env });
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, /^Applied 0001_event_store\n/);
      assert.deepEqual(
        await recorded(sql),
        MIGRATIONS.map(({ version, name }) => ({ version, name })),
      );

      const refused = await runDenoScript(script, ["--nope"], { env });
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /unknown flag --nope/);
      const down = await runDenoScript(script, [], { env: { ...env, DATABASE_URL: unreachable } });
      assert.equal(down.code, 1);
      assert.match(down.stderr, /^migrate: cannot migrate 127\.0\.0\.1:1\/app/);
    });
  });
});
