/**
 * The `pupsourcing` CLI as a real process (`deno run src/cli/main.ts`)
 * against real PostgreSQL: every command in text and `--json`, the exit
 * codes and one-line failures, `run` with a user's module stopped by
 * SIGTERM, and `rebuild`'s progress, in a pseudo-terminal (`script`) and
 * off one.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { after, before, describe, it, waitUntil } from "./_bounds.ts";
import { runDenoScript, startDenoScript } from "./_cli.ts";
import { holdTransaction, json, setupDatabase, type TestDb } from "./_db.ts";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const isDeno = "Deno" in globalThis;

describe("the pupsourcing CLI", { skip: !isDeno }, () => {
  let db: TestDb;
  let dir: string;
  before(async () => {
    db = await setupDatabase();
    dir = await mkdtemp(join(tmpdir(), "pupsourcing-cli-"));
  });
  after(async () => {
    await db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}) =>
    ({ ...process.env, DATABASE_URL: db.url, NO_COLOR: "1", ...extra }) as Record<string, string>;
  const cli = (args: string[], extra?: Record<string, string>) =>
    runDenoScript(MAIN, args, { env: env(extra) });

  /** A store on a fresh schema, its read model, `users` User events, and the module. */
  async function app(users: number) {
    const store = await db.freshStore();
    const schema = store.tables.schema!;
    await db.sql.unsafe(`create table ${schema}.emails (id text primary key, email text)`);
    await appendUsers(store, 0, users);
    const module = join(dir, `${schema}.js`);
    await writeFile(module, moduleSource(schema));
    return { store, schema, module, flags: ["--schema", schema] };
  }

  async function appendUsers(store: PostgresStore, from: number, count: number) {
    for (let i = from; i < from + count; i++) {
      await store.append(db.sql, [{
        aggregateType: "User",
        aggregateId: `user-${i}`,
        eventType: "UserRegistered",
        payload: json({ email: `u${i}@example.com` }),
      }]);
    }
  }

  const emails = async (schema: string) =>
    Number((await db.sql.unsafe(`select count(*)::int as n from ${schema}.emails`))[0].n);

  it("--help on every command; exit 2 and one line for usage errors, 1 for runtime ones", async () => {
    for (
      const command of [
        "migrate-gen",
        "migrate",
        "run",
        "status",
        "horizon",
        "reset",
        "rebuild",
        "parked",
        "tail",
      ]
    ) {
      const help = await cli([command, "--help"]);
      assert.equal(help.code, 0, `${command} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: (pupsourcing )?${command} `), command);
    }
    const top = await cli(["--help"]);
    assert.match(top.stdout, /^Usage: pupsourcing <command>/);

    const { module, schema, flags } = await app(1);
    const oneLine = (result: { stderr: string }) =>
      assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
    const usage = [
      [["nope"], /unknown command "nope"/],
      [["status", "--bogus"], /unknown flag --bogus \(see pupsourcing status --help\)/],
      [["tail", "-n", "-1"], /-n expects a value, .* write --lines=<value>/],
      [["tail", "--lines"], /--lines expects a value/],
      [["status", "--json=yes"], /--json takes no value/],
      [["tail", "--follow=yes"], /--follow takes no value/],
      [["status", "a", "b"], /expected at most one projection NAME/],
      [["reset"], /expected one projection NAME, got nothing/],
      [["reset", "emails", "--to", "later"], /--to must be start or now/],
      [["reset", "emails", ...flags], /needs --module .* or --keep-read-model/],
      [["rebuild", "emails"], /rebuild needs --module/],
      [["tail", "--aggregate", "User"], /--aggregate must be TYPE:ID/],
      [["status", "nope", ...flags], /none has run yet/],
      [["run", join(dir, "missing.js"), ...flags], /cannot load the module/],
      [["run", module, "--projection", "emails", "--projection", "emails"], /given twice/],
      [
        ["run", module, "--projection", "other"],
        /has no projection "other" \(it has: audit, emails\)/,
      ],
      [["run", module, "--total-partitions", "2"], /--partition-key/],
    ] as const;
    for (const [args, message] of usage) {
      const result = await cli([...args]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      oneLine(result);
    }
    const empty = join(dir, "empty.js");
    await writeFile(empty, "export const nothing = 1;\n");
    const none = await cli(["run", empty]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /exports no projection/);
    const twice = join(dir, "twice.js");
    await writeFile(
      twice,
      'export const a = { name: "p", handle() {} };\nexport const b = { name: "p", handle() {} };\n',
    );
    const bad = join(dir, "bad.js");
    await writeFile(
      bad,
      'export const processorConfig = { batchSize: 0 };\nexport const p = { name: "p", handle() {} };\n',
    );
    const refused = await cli(["rebuild", "p", "--module", bad, ...flags]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /batchSize/);
    oneLine(refused);
    const duplicate = await cli(["run", twice]);
    assert.equal(duplicate.code, 2);
    assert.match(duplicate.stderr, /has two projections named "p"/);

    const noDatabase = await cli(["status"], { DATABASE_URL: "" });
    assert.equal(noDatabase.code, 2);
    assert.match(noDatabase.stderr, /no database: pass --database-url/);
    const down = await cli(["status"], { DATABASE_URL: "postgres://127.0.0.1:1/app" });
    assert.equal(down.code, 1);
    assert.match(
      down.stderr,
      /^pupsourcing status: failed on 127\.0\.0\.1:1\/app, from DATABASE_URL/,
    );
    oneLine(down);

    // A running projection is not reset without --force, and nothing changes.
    const ran = await cli(["run", module, "--until-caught-up", ...flags]);
    assert.equal(ran.code, 0, ran.stderr);
    await db.sql.unsafe(
      `update ${schema}.projection_checkpoints set owner_id = 'w1',
         lease_expires_at = now() + interval '1 minute' where projection_name = 'emails'`,
    );
    const busy = await cli(["reset", "emails", "--module", module, ...flags]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /projection "emails" is running \(worker w1 holds a lease\)/);
    oneLine(busy);
    assert.equal(await emails(schema), 1, "the reset hook did not run");
  });

  it("migrate-gen and migrate", async () => {
    const url = await db.createDatabase();
    const made = await cli(["migrate"], { DATABASE_URL: url });
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^Applied 0001_event_store\n/);
    const again = await cli(["migrate", "--json"], { DATABASE_URL: url });
    assert.deepEqual(JSON.parse(again.stdout), { applied: [] });
    const fresh = await db.createDatabase();
    const json = JSON.parse((await cli(["migrate", "--json"], { DATABASE_URL: fresh })).stdout);
    assert.equal(json.applied[0], "0001_event_store");
    const output = join(dir, "migrations");
    const files = await cli(["migrate-gen", "--output", output]);
    assert.equal(files.code, 0, files.stderr);
    assert.ok((await readdir(output)).includes("0001_event_store.sql"));
    const other = join(dir, "migrations-json");
    const written = JSON.parse((await cli(["migrate-gen", "--output", other, "--json"])).stdout);
    assert.equal(written.written[0], join(other, "0001_event_store.sql"));
  });

  it("run: a module's projections until caught up (text, --json); SIGTERM stops a continuous run", async () => {
    const { module, schema, flags } = await app(12);
    const caughtUp = await cli(["run", module, "--until-caught-up", ...flags]);
    assert.equal(caughtUp.code, 0, caughtUp.stderr);
    assert.equal(
      caughtUp.stdout,
      "audit [0/1]: caught up, 12 events in 3 batches\nemails [0/1]: caught up, 12 events in 3 batches\n",
    );
    assert.match(
      caughtUp.stderr,
      /info {2}projection worker starting projection=emails partition=0\/1 segments=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 from="the start of the log \(first run\)"/,
    );
    assert.equal(await emails(schema), 12);

    const again = await cli([
      "run",
      module,
      "--until-caught-up",
      "--json",
      "--projection",
      "emails",
      ...flags,
    ]);
    assert.equal(again.code, 0, again.stderr);
    const { outcomes } = JSON.parse(again.stdout);
    assert.deepEqual(
      outcomes.map((o: { status: string; processed: number }) => [o.status, o.processed]),
      [["caught_up", 0]],
    );
    const logLines = again.stderr.trim().split("\n").map((line) => JSON.parse(line));
    assert.ok(
      logLines.some((l) =>
        l.message === "projection worker starting" && l.from && l.lagEvents === "0"
      ),
    );

    const { store } = { store: await storeOf(schema) };
    const worker = startDenoScript(MAIN, ["run", module, "--progress-every", "0.2", ...flags], {
      env: env({ SLOW_MS: "30" }),
    });
    try {
      await worker.waitFor(
        /projection processor starting projection=emails/,
        "the worker to start",
      );
      await appendUsers(store, 12, 20);
      await worker.waitFor(
        /projection worker progress projection=emails partition=0\/1 processed=\d+ rate=\d+ lagEvents=\d+ lagSeconds=/,
        "a progress line while catching up",
      );
      await waitUntil(
        "the worker to apply the new events",
        async () => await emails(schema) === 32,
        20_000,
        50,
      ).catch((error) => {
        throw new Error(`${error.message}; its log:\n${worker.output().stderr}`);
      });
    } finally {
      worker.kill("SIGTERM");
    }
    const stopped = await worker.exited();
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(
      stopped.stdout,
      /^audit \[0\/1\]: stopped, 20 events in (?:1 batch|(?:[02-9]|\d\d+) batches)\nemails \[0\/1\]: stopped, 20 events/,
    );
    assert.match(stopped.stderr, /projection processor stopped projection=emails reason=aborted/);
  });

  it("run --group: two members share a projection, status shows them, SIGTERM stops them", async () => {
    const { module, schema, store, flags } = await app(10);
    const member = (id: string) =>
      startDenoScript(MAIN, [
        "run",
        module,
        "--projection",
        "emails",
        "--group",
        "--member-id",
        id,
        ...flags,
      ], { env: env() });
    const a = member("a");
    const b = member("b");
    try {
      await a.waitFor(
        /projection worker starting projection=emails member=a segments="by lease/,
        "member a to start",
      );
      await b.waitFor(/projection worker starting projection=emails member=b/, "member b to start");
      await waitUntil(
        "both members to hold segments",
        async () => {
          const result = await cli(["status", "emails", "--json", ...flags]);
          if (result.code !== 0) return false;
          const status = JSON.parse(result.stdout);
          return status.members.length === 2 &&
            status.members.every((m: { segments: number[] }) => m.segments.length === 8);
        },
        30_000,
        200,
      );
      await appendUsers(store, 10, 20);
      await waitUntil(
        "the group to apply every event",
        async () => await emails(schema) === 30,
        20_000,
        50,
      );
      const text = await cli(["status", "emails", ...flags]);
      assert.match(text.stdout, /\nmembers: {5}a \((\d+,){7}\d+\), b \((\d+,){7}\d+\)\n/);
      assert.match(
        text.stdout,
        /SEGMENT\s+CHECKPOINT\s+LAG\s+LAG TIME\s+MODE\s+OWNER\s+HEARTBEAT\s+LEASE UNTIL\n0\s+\S+\s+0\s+0s\s+group\s+[ab]\s+\S+Z\s+\S+Z\n/,
      );
    } finally {
      a.kill("SIGTERM");
      b.kill("SIGTERM");
    }
    for (const [id, worker] of [["a", a], ["b", b]] as const) {
      const stopped = await worker.exited();
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stdout, new RegExp(`^emails \\[${id}\\]: stopped, \\d+ events`));
    }
  });

  it("status and horizon, text and --json", async () => {
    const { module, store, flags } = await app(5);
    assert.equal((await cli(["run", module, "--until-caught-up", ...flags])).code, 0);
    await appendUsers(store, 5, 3);

    const text = await cli(["status", ...flags]);
    assert.equal(text.code, 0, text.stderr);
    const [header, ...rows] = text.stdout.trim().split("\n");
    assert.match(
      header,
      /^PROJECTION\s+SEGMENTS\s+OLDEST\s+NEWEST\s+LAG\s+LAG TIME\s+PARKED\s+LAST ERROR$/,
    );
    assert.deepEqual(rows.map((r) => r.split(/\s+/).filter((_, i) => [0, 1, 4, 6].includes(i))), [
      ["audit", "16", "3", "0"],
      ["emails", "16", "3", "0"],
    ]);
    // Unscoped lag says so, on stderr: stdout stays the table.
    assert.match(text.stderr, /without --module, LAG counts every event/);
    const detail = await cli(["status", "emails", ...flags]);
    assert.match(detail.stdout, /^projection: {2}emails\nsegments: {4}16\n/);
    assert.match(detail.stdout, /lag: {9}3 events, /);
    assert.match(
      detail.stdout,
      /SEGMENT\s+CHECKPOINT\s+LAG\s+LAG TIME\s+MODE\s+OWNER\s+HEARTBEAT\s+LEASE UNTIL\n0\s+\S+\s+\d+\s+\S+\s+static\s+-/,
    );
    const asJson = JSON.parse((await cli(["status", "emails", "--json", ...flags])).stdout);
    assert.equal(asJson.name, "emails");
    assert.equal(asJson.lagEvents, "3");
    assert.equal(asJson.segmentDetails.length, 16);
    const scoped = JSON.parse(
      (await cli(["status", "--json", "--module", module, ...flags])).stdout,
    );
    assert.deepEqual(
      scoped.map((s: { name: string; lagEvents: string }) => [s.name, s.lagEvents]),
      [["audit", "3"], ["emails", "3"]],
    );

    // A writing transaction left open holds the horizon: horizon names it.
    const held = await holdTransaction(
      db.client({ max: 1, connection: { application_name: "forgotten-tx" } }),
    );
    try {
      await held.tx`select pg_current_xact_id()`;
      await appendUsers(store, 8, 2);
      const horizon = await cli(["horizon", ...flags]);
      assert.equal(horizon.code, 0, horizon.stderr);
      assert.match(
        horizon.stdout,
        /^horizon: {8}\d+\npending events: 2\n\nPID\s+STATE\s+AGE\s+XID AGE\s+APPLICATION\s+QUERY\n\d+\s+idle in transaction\s+\S+\s+\d+\s+forgotten-tx/,
      );
      const report = JSON.parse((await cli(["horizon", "--json", ...flags])).stdout);
      assert.equal(report.pendingEvents, "2");
      assert.equal(report.blockers[0].applicationName, "forgotten-tx");
      assert.ok(report.blockers[0].transactionAgeSeconds >= 0);
    } finally {
      await held.commit();
    }
    const clear = await cli(["horizon", ...flags]);
    assert.match(clear.stdout, /pending events: 0\nblockers: {7}none/);
  });

  it("reset and rebuild, text and --json; rebuild's plain progress off a terminal", async () => {
    const { module, schema, flags } = await app(30);
    assert.equal((await cli(["run", module, "--until-caught-up", ...flags])).code, 0);

    const reset = await cli(["reset", "emails", "--module", module, ...flags]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal(
      reset.stdout,
      "Reset emails: 16 segments to 0/0 (the start of the log); its reset hook ran.\n",
    );
    assert.equal(await emails(schema), 0);
    const now = JSON.parse(
      (await cli(["reset", "audit", "--to", "now", "--json", ...flags])).stdout,
    );
    assert.equal(now.checkpoint.globalPosition, "30");
    assert.equal(now.hookRan, false);

    const rebuilt = await cli([
      "rebuild",
      "emails",
      "--module",
      module,
      "--report-every",
      "0.1",
      ...flags,
    ], { SLOW_MS: "20" });
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    const lines = rebuilt.stdout.trim().split("\n");
    assert.match(lines[0], /^rebuild emails: 0\/30 events \(0%\), 0 events\/s, ETA \?$/);
    assert.ok(
      lines.slice(1, -1).some((l) =>
        /^rebuild emails: ([1-9]|[12]\d)\/30 events \(\d+%\), \d+ events\/s, ETA /.test(l)
      ),
      rebuilt.stdout,
    );
    assert.match(lines.at(-1)!, /^rebuild emails: done, 30 events in [\d.]+s \(\d+ events\/s\)$/);
    assert.ok(!rebuilt.stdout.includes("\r"), "no bar off a terminal");
    assert.equal(await emails(schema), 30);

    const asJson = await cli(["rebuild", "emails", "--module", module, "--json", ...flags]);
    const events = asJson.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events[0], {
      event: "started",
      done: 0,
      total: 30,
      rate: 0,
      etaSeconds: null,
    });
    assert.equal(events.at(-1).event, "done");
    assert.equal(events.at(-1).done, 30);
  });

  it(
    "rebuild draws a progress bar in a terminal that moves and finishes",
    { timeout: 90_000 },
    async () => {
      const { module, flags } = await app(40);
      assert.equal((await cli(["run", module, "--until-caught-up", ...flags])).code, 0);
      const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
      const command = [
        process.execPath,
        "run",
        "-A",
        MAIN,
        "rebuild",
        "emails",
        "--module",
        module,
        "--batch-size",
        "4",
        ...flags,
      ]
        .map(quote).join(" ");
      const output = await new Promise<string>((resolve, reject) => {
        execFile("script", ["-qfc", command, "/dev/null"], {
          env: env({ SLOW_MS: "25" }),
          timeout: 60_000,
        }, (error, stdout) => {
          if (error) reject(new Error(`script -qfc rebuild failed: ${error.message}\n${stdout}`));
          else resolve(stdout);
        });
      });
      const frames = output.split("\r").filter((f) => f.includes("rebuild emails ["));
      const done = frames.map((f) => Number(/\] (\d+)\/40 /.exec(f)?.[1]));
      assert.ok(new Set(done).size >= 4, `the bar moved through few values: ${done.join(",")}`);
      assert.deepEqual(done, [...done].sort((a, b) => a - b), "the bar never goes back");
      assert.match(frames.at(-1)!, /\[#{30}\] 40\/40 100% \d+\/s ETA 0s/);
      assert.match(output, /rebuild emails: done, 40 events in [\d.]+s/);
    },
  );

  it("tail: the log's end, --json, one aggregate, --follow", async () => {
    const { store, flags } = await app(4);
    const text = await cli(["tail", "-n", "2", ...flags]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^3 {2}\d+ {2}\S+Z {2}User\/user-2@1 {2}UserRegistered {2}\{"email":"u2@example.com"\}$/,
    );
    const objects = (await cli(["tail", "--json", ...flags])).stdout.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(objects.map((o) => [o.globalPosition, o.aggregateId, o.payload.email]), [
      ["1", "user-0", "u0@example.com"],
      ["2", "user-1", "u1@example.com"],
      ["3", "user-2", "u2@example.com"],
      ["4", "user-3", "u3@example.com"],
    ]);
    await store.append(db.sql, [{
      aggregateType: "Blob",
      aggregateId: "b",
      eventType: "Raw",
      payload: new Uint8Array([0xff, 0]),
    }]);
    const one = await cli(["tail", "--aggregate", "Blob:b", ...flags]);
    assert.match(one.stdout, /^5 {2}\d+ {2}\S+Z {2}Blob\/b@1 {2}Raw {2}base64:\/wA=\n$/);

    // -n 1 prints the last event at once: then it is surely following.
    const follow = startDenoScript(MAIN, ["tail", "-f", "-n", "1", ...flags], { env: env() });
    try {
      await follow.waitFor(/Blob\/b@1/, "tail -f to print the last event");
      await appendUsers(store, 4, 1);
      await follow.waitFor(/User\/user-4@1/, "tail -f to print the new event");
    } finally {
      follow.kill("SIGTERM");
    }
    const ended = await follow.exited();
    assert.equal(ended.code, 0, ended.stderr);
    assert.equal(ended.stdout.trim().split("\n").length, 2);
  });

  it("tail into a reader that stops early ends quietly", async () => {
    const { store, flags } = await app(0);
    await store.append(
      db.sql,
      Array.from({ length: 3000 }, () => ({
        aggregateType: "User",
        aggregateId: "many",
        eventType: "UserRenamed",
        payload: json({ name: "x".repeat(40) }),
      })),
    );
    const script = `"${process.execPath}" run -A "${MAIN}" tail -n 3000 ${flags.join(" ")} ` +
      `| head -n 1 > /dev/null; echo "tail exited $\{PIPESTATUS[0]}"`;
    const { stdout, stderr } = await promisify(execFile)("bash", ["-c", script], {
      env: env(),
      timeout: 60_000,
    });
    assert.equal(stdout.trim(), "tail exited 0", stderr);
    assert.equal(stderr, "");
  });

  async function storeOf(schema: string): Promise<PostgresStore> {
    const { PostgresStore } = await import("../src/postgres/mod.ts");
    return new PostgresStore({ schema });
  }
});

/** A user's module: two projections, the read model's reset hook, its store's schema. */
function moduleSource(schema: string): string {
  const table = JSON.stringify(`${schema}.emails`);
  return `import process from "node:process";

export const storeConfig = { schema: ${JSON.stringify(schema)} };
export const processorConfig = {
  batchSize: 5,
  pollInterval: 20,
  maxPollInterval: 200,
  group: { leaseMs: 2000 }, // group mode only (run --group)
};
const slow = Number(process.env.SLOW_MS ?? 0);

export const emails = {
  name: "emails",
  aggregateTypes: ["User"],
  async handle(event, tx) {
    if (slow) await new Promise((resolve) => setTimeout(resolve, slow));
    const { email } = JSON.parse(new TextDecoder().decode(event.payload));
    await tx.unsafe(
      "insert into ${
    table.slice(1, -1)
  } (id, email) values ($1, $2) on conflict (id) do update set email = excluded.email",
      [event.aggregateId, email],
    );
  },
  async reset(tx) {
    await tx.unsafe("delete from ${table.slice(1, -1)}");
  },
};

export const audit = { name: "audit", handle() {} };
`;
}
