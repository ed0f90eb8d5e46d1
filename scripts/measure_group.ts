/**
 * `deno run -A scripts/measure_group.ts [--rounds N]`: with the default
 * group settings (a 10 s lease, a heartbeat every 3.3 s), how long a new
 * member takes to get its share, and how long the group takes to take
 * over a SIGKILLed member's segments. Real member processes (the tests'
 * `group_member` fixture) on a throwaway PostgreSQL, while a writer
 * appends. Numbers for docs/scaling.md; not part of any test run.
 *
 * Each round: member `a` alone owns all 16 segments; `b` is started and
 * the time is taken from its start until both own 8 (it includes the
 * process start-up, about a second) and from its first heartbeat; then
 * `b` is SIGKILLed and the time is taken until `a` owns all 16 again.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";
import { DEFAULT_LEASE_MS, segmentOwnership } from "../src/projection/mod.ts";
import { fixtureCommand } from "../tests/_child.ts";
import { setupDatabase } from "../tests/_db.ts";
import { createGroupModel, startWriters } from "../tests/_group.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" } } });
const db = await setupDatabase();
const store = await db.freshStore();
await createGroupModel(db.sql, store);
const writers = startWriters([db.client({ max: 1 })], store);
const heartbeatMs = Math.floor(DEFAULT_LEASE_MS / 3);

function start(id: string): ChildProcess {
  const [command, args] = fixtureCommand("group_member", [
    db.url,
    store.tables.schema!,
    "measured",
    id,
    String(DEFAULT_LEASE_MS),
    String(heartbeatMs),
    "0",
  ]);
  return spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
}

/** Resolves with the time at which `check` first held (polled every 20 ms). */
async function when(check: (counts: Map<string, number>) => boolean): Promise<number> {
  for (;;) {
    const { members } = await segmentOwnership(db.sql, store, "measured");
    const counts = new Map(members.map((m) => [m.memberId, m.segments.length]));
    if (check(counts)) return performance.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const a = start("a");
await when((c) => c.get("a") === 16);
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const spawned = performance.now();
    const b = start(`b${round}`);
    const joined = await when((c) => c.has(`b${round}`));
    const shared = await when((c) => c.get("a") === 8 && c.get(`b${round}`) === 8);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * heartbeatMs));
    const killed = performance.now();
    b.kill("SIGKILL");
    const taken = await when((c) => c.get("a") === 16 && c.size === 1);
    console.log(
      `round ${round}: new member's share ${seconds(shared - spawned)} s from its start ` +
        `(${seconds(shared - joined)} s from its first heartbeat); ` +
        `takeover after SIGKILL ${seconds(taken - killed)} s`,
    );
  }
} finally {
  a.kill("SIGKILL");
  await writers.stop();
  await db.close();
}
process.exit(0);
