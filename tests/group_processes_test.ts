import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import process from "node:process";
import { type ChildProcess, spawn } from "node:child_process";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { fixtureCommand } from "./_child.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appliedWithoutLease,
  assertExactlyOnce,
  createGroupModel,
  startWriters,
  stolenLeases,
  waitBalanced,
} from "./_group.ts";
import { inSchema, waitUntil, within } from "./_projection.ts";

/** Short leases, so takeovers take a second or two. */
const LEASE_MS = 1500;
const HEARTBEAT_MS = 300;
/** How long a step may take to settle: a lease, a few heartbeats, a process start. */
const SETTLE_MS = 20_000;

/** A group member process. */
interface Member {
  id: string;
  child: ChildProcess;
  stderr(): string;
}

function startMember(
  db: TestDb,
  store: PostgresStore,
  name: string,
  id: string,
  slowMs: number,
): Member {
  const [command, args] = fixtureCommand("group_member", [
    db.url,
    store.tables.schema!,
    name,
    id,
    String(LEASE_MS),
    String(HEARTBEAT_MS),
    String(slowMs),
  ]);
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => stderr += chunk);
  return { id, child, stderr: () => stderr };
}

function exited(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", resolve));
}

async function kill(member: Member): Promise<void> {
  const gone = exited(member.child);
  member.child.kill("SIGKILL");
  await within(gone, 10_000, `member ${member.id} to die`);
}

/** SIGTERM: the member leaves the group (releases its leases) and exits 0. */
async function stop(member: Member): Promise<void> {
  const gone = exited(member.child);
  member.child.kill("SIGTERM");
  await within(gone, 15_000, `member ${member.id} to stop on SIGTERM`);
  // Deno's node:child_process reports a child it sent SIGTERM to as killed
  // by it, even when the child handled it and exited 0.
  const { exitCode, signalCode } = member.child;
  assert.ok(
    exitCode === 0 || (exitCode === null && signalCode === "SIGTERM"),
    `member ${member.id} exited ${exitCode ?? signalCode}: ${member.stderr()}`,
  );
}

describe("consumer groups across processes", () => {
  let db: TestDb;
  const running: Member[] = [];
  before(async () => db = await setupDatabase());
  after(async () => {
    await Promise.all(running.map(kill));
    await db.close();
  });

  const start = (store: PostgresStore, name: string, id: string, slowMs = 1) => {
    const member = startMember(db, store, name, id, slowMs);
    running.push(member);
    return member;
  };

  it("churn while 4 writers append: every event once, in order, balanced after each step", {
    timeout: 150_000,
  }, async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    const writers = startWriters([0, 1, 2, 3].map(() => db.client({ max: 1 })), store);
    const settle = (ids: string[], what: string) =>
      waitBalanced(db.sql, store, "churn", ids, SETTLE_MS, what);
    try {
      for (let round = 1; round <= 3; round++) {
        const id = (n: number) => `r${round}-m${n}`;
        const [m1] = [start(store, "churn", id(1))];
        await settle([id(1)], `round ${round}: first member`);
        const [m2, m3, m4] = [2, 3, 4].map((n) => start(store, "churn", id(n)));
        await settle([1, 2, 3, 4].map(id), `round ${round}: three joined`);
        await kill(m2);
        await settle([1, 3, 4].map(id), `round ${round}: one SIGKILLed`);
        const m5 = start(store, "churn", id(5));
        await settle([1, 3, 4, 5].map(id), `round ${round}: one joined`);
        await Promise.all([stop(m1), stop(m3)]);
        await settle([4, 5].map(id), `round ${round}: two stopped`);
        await kill(m4);
        await settle([id(5)], `round ${round}: another SIGKILLed`);
        const [m6, m7] = [6, 7].map((n) => start(store, "churn", id(n)));
        await settle([5, 6, 7].map(id), `round ${round}: two joined`);
        if (round < 3) await Promise.all([m5, m6, m7].map(stop));
        else {
          const appended = await writers.stop();
          assert.ok(appended > 100, `the writers appended ${appended} events`);
          await assertExactlyOnce(db.sql, store, "churn", 60_000);
          await Promise.all([m5, m6, m7].map(stop));
        }
      }
    } finally {
      await writers.stop();
    }
    assert.deepEqual(await stolenLeases(db.sql, store), [], "a lease taken while live");
    assert.deepEqual(await appliedWithoutLease(db.sql, store), [], "applied without the lease");
    const [{ members }] = await db.sql.unsafe(
      `select count(*)::int as members from ${store.tables.groupMembers}`,
    );
    assert.equal(members, 0, "every member left or expired");
  });

  it("a member paused past its lease (SIGSTOP) applies nothing after its segments were taken", {
    timeout: 90_000,
  }, async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    const writers = startWriters([0, 1].map(() => db.client({ max: 1 })), store);
    const applied = inSchema(store, "group_applied");
    const appliedBy = async (id: string) => {
      const [{ n }] = await db.sql.unsafe(
        `select count(*)::int as n from ${applied} where member_id = $1`,
        [id],
      );
      return n as number;
    };
    try {
      // Slow batches (10 events of 200 ms): the pause lands inside one,
      // with the segments' rows locked.
      const stale = start(store, "paused", "stale", 200);
      await waitBalanced(db.sql, store, "paused", ["stale"], SETTLE_MS, "stale alone");
      await waitUntil("stale to apply events", async () => await appliedBy("stale") > 5, 20_000);
      process.kill(stale.child.pid!, "SIGSTOP");
      const fresh = start(store, "paused", "fresh");
      // Also through segments the paused member held locked mid-batch: its
      // idle transaction is ended after the lease.
      await waitBalanced(db.sql, store, "paused", ["fresh"], SETTLE_MS, "fresh took over")
        .catch(async (error) => {
          // What holds the segments: the sessions and their states.
          const activity = await db.sql`
            select pid, state, wait_event_type, left(query, 60) as query from pg_stat_activity
            where datname = current_database()`;
          throw new Error(`${error.message}\nsessions: ${JSON.stringify(activity)}`);
        });
      await waitUntil("fresh to apply events", async () => await appliedBy("fresh") > 20, 20_000);
      process.kill(stale.child.pid!, "SIGCONT");
      await waitBalanced(db.sql, store, "paused", ["fresh", "stale"], SETTLE_MS, "stale rejoined")
        .catch((error) => {
          throw new Error(`${error.message}\nstale's stderr: ${stale.stderr()}`);
        });
      await writers.stop();
      // The slow member leaves: fresh catches up on everything.
      await stop(stale);
      await assertExactlyOnce(db.sql, store, "paused", SETTLE_MS);
      await stop(fresh);
    } finally {
      await writers.stop();
    }
    const [{ taken }] = await db.sql.unsafe(
      // Distinct segments: a machine stalled after the rejoin may let stale's
      // leases lapse again, and fresh take some a second time, rightly.
      `select count(distinct segment)::int as taken from ${inSchema(store, "lease_audit")}
       where old_owner = 'stale' and new_owner = 'fresh'`,
    );
    assert.equal(taken, 16, "fresh took every segment from the paused member");
    assert.deepEqual(await stolenLeases(db.sql, store), [], "a lease taken while live");
    assert.deepEqual(await appliedWithoutLease(db.sql, store), [], "applied without the lease");
  });
});
