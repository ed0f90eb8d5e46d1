/**
 * A consumer group: identical worker processes that join and leave at
 * will, given the projection's segments through leases in PostgreSQL.
 *
 *     deno run -A examples/consumer_group.ts
 *
 * Seeds a database and starts two members (this same script, as child
 * processes with `PUPSOURCING_GROUP=1`: no partition numbers), then
 * SIGKILLs one, adds another, and stops them all, printing who owns which
 * segment each time it changes, and how long each takeover took. At the
 * end it checks that every event was handled exactly once. Leases here
 * last 2 s (the default is 10 s) so the whole run takes a few seconds.
 *
 * A member on its own, against your database:
 *
 *     DATABASE_URL=postgres://... PUPSOURCING_GROUP=1 deno run -A examples/consumer_group.ts --worker
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ProjectionProcessor, segmentOwnership } from "../src/projection/mod.ts";
import { workerConfigFromArgs } from "../src/runner/mod.ts";
import { connectExampleDb, type ExampleDb, json, openExampleDb } from "./_db.ts";

const { values: flags } = parseArgs({
  options: { worker: { type: "boolean", default: false } },
  strict: false,
});
const NAME = "order_log";
const GROUP = { leaseMs: 2000, heartbeatMs: 400 };

if (flags.worker) await member();
else await launch();

/** One member: runs until SIGTERM, then leaves the group. */
async function member(): Promise<void> {
  const db = await connectExampleDb(process.env.DATABASE_URL!);
  const worker = workerConfigFromArgs();
  if (!("group" in worker)) throw new Error("start a member with --group or PUPSOURCING_GROUP=1");
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => controller.abort());
  }
  const memberId = worker.group.memberId ?? crypto.randomUUID();
  const processor = new ProjectionProcessor(db.sql, db.store, {
    group: { ...GROUP, ...worker.group, memberId },
  });
  await processor.run({
    name: NAME,
    async handle(event, tx) {
      await tx`insert into order_log (event_id, member) values (${event.eventId}, ${memberId})`;
    },
  }, { signal: controller.signal });
  await db.close();
}

/** Runs the scenario. */
async function launch(): Promise<void> {
  const db = await openExampleDb();
  await db.sql`create table order_log (event_id uuid primary key, member text not null)`;
  let appended = 0;
  const append = async (count: number) => {
    for (let i = 0; i < count; i++) {
      await db.store.append(db.sql, [{
        aggregateType: "Order",
        aggregateId: `order-${appended % 50}`,
        eventType: "OrderNoted",
        payload: json({ n: appended }),
      }]);
      appended++;
    }
  };
  await append(200);
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  const members = new Map<string, ChildProcess>();
  const start = (id: string) => {
    const child = spawn(
      process.execPath,
      ["run", "-A", fileURLToPath(import.meta.url), "--worker"],
      {
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          PUPSOURCING_GROUP: "1",
          PUPSOURCING_MEMBER_ID: id,
        },
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
    members.set(id, child);
    console.log(`${elapsed()}  started member ${id}`);
  };
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise((resolve) => child.once("exit", resolve));
  const signal = async (id: string, how: "SIGKILL" | "SIGTERM") => {
    const child = members.get(id)!;
    members.delete(id);
    process.kill(child.pid!, how);
    await exited(child);
    console.log(`${elapsed()}  ${how === "SIGKILL" ? "killed" : "stopped"} member ${id}`);
  };

  let last = "";
  /** Prints the ownership when it changes; resolves once the group is `ids`, balanced. */
  const settled = async (ids: string[], what: string) => {
    const from = performance.now();
    for (;;) {
      if (performance.now() - from > 30_000) throw new Error(`${what}: no balance after 30 s`);
      await append(5);
      const ownership = await segmentOwnership(db.sql, db.store, NAME);
      const line = ownership.members.map((m) => `${m.memberId}: ${ranges(m.segments)}`).join("   ");
      if (line !== last) console.log(`${elapsed()}    owners  ${line || "(none)"}`);
      last = line;
      const counts = ownership.members.map((m) => m.segments.length);
      const live = ownership.segments.filter((s) => s.live).length;
      if (
        ownership.members.map((m) => m.memberId).join() === [...ids].sort().join() &&
        live === 16 && Math.max(...counts) - Math.min(...counts) <= 1
      ) {
        console.log(
          `${elapsed()}  ${what}: settled in ${((performance.now() - from) / 1000).toFixed(1)} s`,
        );
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  try {
    start("a");
    start("b");
    await settled(["a", "b"], "two members");
    await signal("b", "SIGKILL");
    await settled(["a"], "takeover after SIGKILL (lease 2 s)");
    start("c");
    await settled(["a", "c"], "a new member gets its share");
    start("d");
    await settled(["a", "c", "d"], "another one");
    await signal("a", "SIGTERM");
    await settled(["c", "d"], "handover after a graceful stop");
    // Let the last events through, then stop everyone.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const id of [...members.keys()]) await signal(id, "SIGTERM");
  } finally {
    for (const child of members.values()) child.kill("SIGKILL");
  }
  // A last member catches up on what the stopped ones left.
  const worker = new ProjectionProcessor(db.sql, db.store, { group: { memberId: "final" } });
  await worker.run({
    name: NAME,
    async handle(event, tx) {
      await tx`insert into order_log (event_id, member) values (${event.eventId}, 'final')`;
    },
  }, { mode: "until_caught_up" });
  const [{ handled, by }] = await db.sql`
    select count(*)::int as handled, count(distinct member)::int as by from order_log`;
  console.log(`${appended} events appended, ${handled} handled exactly once by ${by} members`);
  if (handled !== appended) throw new Error(`expected ${appended} events handled, got ${handled}`);
  await db.close();
}

/** `[0, 1, 2, 5, 6]` as `0-2,5-6`. */
function ranges(segments: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    let j = i;
    while (j + 1 < segments.length && segments[j + 1] === segments[j] + 1) j++;
    parts.push(i === j ? `${segments[i]}` : `${segments[i]}-${segments[j]}`);
    i = j;
  }
  return parts.join(",");
}

export type { ExampleDb };
