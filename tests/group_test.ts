import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { ValidationError } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import {
  PartitioningModeError,
  type ProcessorConfig,
  ProjectionProcessor,
  resetProjection,
  segmentOwnership,
} from "../src/projection/mod.ts";
import {
  partitionConfigFromArgs,
  runGroupMembers,
  runMultipleProjections,
  workerConfigFromArgs,
} from "../src/runner/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import {
  appliedWithoutLease,
  assertExactlyOnce,
  createGroupModel,
  groupProjection,
  stolenLeases,
  waitBalanced,
} from "./_group.ts";
import { appendEvents, caughtUp, inSchema, within } from "./_projection.ts";
import { runBatch } from "../src/projection/batch.ts";
import { BatchStatements, ensureCheckpoints } from "../src/projection/checkpoints.ts";
import { Failures } from "../src/projection/failures.ts";
import { resolvePolicy } from "../src/projection/policy.ts";

/** Short leases, so the tests see takeovers in a second or two. */
const FAST = { leaseMs: 1000, heartbeatMs: 200 };
/** Leases that a stall of the loaded test machine does not let lapse, where no takeover is wanted. */
const STEADY = { leaseMs: 5000, heartbeatMs: 1000 };

function member(
  db: TestDb,
  store: PostgresStore,
  name: string,
  memberId: string,
  lease: { leaseMs: number; heartbeatMs: number } = FAST,
) {
  const controller = new AbortController();
  const processor = new ProjectionProcessor(db.client({ max: 2 }), store, {
    group: { memberId, ...lease },
    batchSize: 20,
    pollInterval: 10,
    maxPollInterval: 100,
  });
  const run = processor.run(groupProjection(store, name, memberId), { signal: controller.signal });
  return {
    run,
    async stop() {
      controller.abort();
      await within(run, 10_000, `member ${memberId} to stop`);
    },
  };
}

describe("consumer groups", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  describe("bad settings are a ValidationError before anything runs", () => {
    const store = () => db.freshStore();
    const cases: [string, ProcessorConfig, string][] = [
      ["group with partitionKey", { group: {}, partitionKey: 0 }, "partitionKey"],
      ["group with totalPartitions", { group: {}, totalPartitions: 2 }, "totalPartitions"],
      [
        "a heartbeat equal to the lease",
        { group: { leaseMs: 1000, heartbeatMs: 1000 } },
        "group.heartbeatMs",
      ],
      [
        "a heartbeat above the lease",
        { group: { leaseMs: 1000, heartbeatMs: 2000 } },
        "group.heartbeatMs",
      ],
      [
        "a default heartbeat above a given lease",
        { group: { heartbeatMs: 20_000 } },
        "group.heartbeatMs",
      ],
      ["a zero lease", { group: { leaseMs: 0 } }, "group.leaseMs"],
      ["a negative lease", { group: { leaseMs: -5 } }, "group.leaseMs"],
      ["a NaN lease", { group: { leaseMs: NaN } }, "group.leaseMs"],
      ["an infinite lease", { group: { leaseMs: Infinity } }, "group.leaseMs"],
      ["a zero heartbeat", { group: { heartbeatMs: 0 } }, "group.heartbeatMs"],
      ["a negative heartbeat", { group: { heartbeatMs: -1 } }, "group.heartbeatMs"],
      ["the static marker as member id", { group: { memberId: "(static)" } }, "group.memberId"],
      ["an empty member id", { group: { memberId: "" } }, "group.memberId"],
      ["a member id with a space", { group: { memberId: "a b" } }, "group.memberId"],
      ["an unknown key", { group: { lease: 5 } as never }, "group.lease"],
      ["group not an object", { group: 1 as never }, "group"],
    ];
    for (const [what, config, field] of cases) {
      it(what, async () => {
        const s = await store();
        assert.throws(() => new ProjectionProcessor(db.sql, s, config), (e: unknown) => {
          assert.ok(e instanceof ValidationError, String(e));
          assert.equal(e.field, field);
          return true;
        });
      });
    }

    it("the runner refuses bad members, partition settings and member ids", async () => {
      const s = await store();
      const p = groupProjection(s, "p", "x");
      const refuses = async (run: () => Promise<unknown>, field: string) => {
        await assert.rejects(run, (e: unknown) => {
          assert.ok(e instanceof ValidationError, String(e));
          assert.equal(e.field, field);
          return true;
        });
      };
      await refuses(() => runGroupMembers(db.sql, s, p, 0), "members");
      await refuses(
        () => runGroupMembers(db.sql, s, p, 2, { config: { partitionKey: 0 } as never }),
        "options.config.partitionKey",
      );
      await refuses(
        () => runGroupMembers(db.sql, s, p, 2, { group: { memberId: "a" } as never }),
        "options.group.memberId",
      );
      await refuses(
        () => runGroupMembers(db.sql, s, p, 2, { group: { leaseMs: 100, heartbeatMs: 100 } }),
        "group.heartbeatMs",
      );
      await refuses(
        () =>
          runMultipleProjections(db.sql, s, [
            { projection: p, config: { group: {} } },
            { projection: p, config: { partitionKey: 1, totalPartitions: 2 } },
          ]),
        "projections[1].config",
      );
      const [none] = await db.sql.unsafe(
        `select count(*)::int as n from ${s.tables.groupMembers}`,
      );
      assert.equal(none.n, 0, "nothing ran");
    });

    it("the command-line helpers read --group and refuse to mix modes", () => {
      assert.deepEqual(workerConfigFromArgs(["--group"], {}), { group: {} });
      assert.deepEqual(workerConfigFromArgs(["--group", "--member-id=pod-a"], {}), {
        group: { memberId: "pod-a" },
      });
      assert.deepEqual(
        workerConfigFromArgs([], { PUPSOURCING_GROUP: "1", PUPSOURCING_MEMBER_ID: "pod-b" }),
        { group: { memberId: "pod-b" } },
      );
      assert.deepEqual(workerConfigFromArgs(["--partition-key", "1", "--total-partitions=2"], {}), {
        partitionKey: 1,
        totalPartitions: 2,
      });
      assert.deepEqual(workerConfigFromArgs([], { PUPSOURCING_GROUP: "0" }), {
        partitionKey: 0,
        totalPartitions: 1,
      });
      const field = (f: () => unknown) => {
        try {
          f();
        } catch (e) {
          assert.ok(e instanceof ValidationError, String(e));
          return e.field;
        }
        assert.fail("expected a ValidationError");
      };
      assert.equal(
        field(() => workerConfigFromArgs(["--group", "--partition-key=0"], {})),
        "--partition-key",
      );
      assert.equal(
        field(() => workerConfigFromArgs(["--group"], { TOTAL_PARTITIONS: "2" })),
        "TOTAL_PARTITIONS",
      );
      assert.equal(field(() => workerConfigFromArgs(["--member-id", "a"], {})), "--member-id");
      assert.equal(
        field(() => workerConfigFromArgs([], { PUPSOURCING_GROUP: "yes" })),
        "PUPSOURCING_GROUP",
      );
      assert.equal(field(() => workerConfigFromArgs(["--groups"], {})), "--groups");
      assert.equal(field(() => workerConfigFromArgs(["--group=1"], {})), "--group");
      assert.equal(field(() => partitionConfigFromArgs(["--group"], {})), "--group");
      assert.equal(
        field(() => partitionConfigFromArgs([], { PUPSOURCING_GROUP: "1" })),
        "PUPSOURCING_GROUP",
      );
    });
  });

  it("balances as members join and leave: ⌊16/N⌋ or ⌈16/N⌉ each, every event applied once", async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 60, perAggregate: 3 });
    const a = member(db, store, "bal", "a");
    await waitBalanced(db.sql, store, "bal", ["a"], 10_000, "a alone");
    const b = member(db, store, "bal", "b");
    await waitBalanced(db.sql, store, "bal", ["a", "b"], 10_000, "b joined");
    const c = member(db, store, "bal", "c");
    await waitBalanced(db.sql, store, "bal", ["a", "b", "c"], 10_000, "c joined");
    await appendEvents(db.sql, store, { prefix: "more", aggregates: 30, perAggregate: 2 });
    await b.stop();
    await waitBalanced(db.sql, store, "bal", ["a", "c"], 10_000, "b left");
    await assertExactlyOnce(db.sql, store, "bal", 20_000);
    await Promise.all([a.stop(), c.stop()]);
    const ownership = await segmentOwnership(db.sql, store, "bal");
    assert.deepEqual(ownership.members, [], "members that stop leave the group");
    assert.ok(ownership.segments.every((s) => s.mode === "none" && !s.live), "and release");
    assert.deepEqual(await stolenLeases(db.sql, store), []);
    assert.deepEqual(await appliedWithoutLease(db.sql, store), []);
  });

  it("a batch applies nothing on segments whose lease is another's or has run out, whatever the member believes", async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 40, perAggregate: 2 });
    const all = Array.from({ length: 16 }, (_, s) => s);
    const target = {
      tables: store.tables,
      name: "stale",
      segments: 16,
      owned: all,
      member: { id: "a", leaseMs: 1000 },
      aggregateTypes: undefined,
      eventTypes: undefined,
      holdsParked: false,
    };
    await ensureCheckpoints(db.sql, target);
    // Segments 0-7 taken over by b; 8-15 still a's, but their lease ran out.
    await db.sql.unsafe(
      `update ${store.tables.checkpoints} set
         owner_id = case when segment < 8 then 'b' else 'a' end,
         lease_expires_at = case when segment < 8 then now() + interval '1 minute'
                                 else now() - interval '1 second' end
       where projection_name = 'stale'`,
    );
    const batch = () =>
      runBatch(db.sql, target, groupProjection(store, "stale", "a"), {
        batchSize: 1000,
        signal: undefined,
        logger: undefined,
        policy: resolvePolicy("onError", undefined),
        failures: new Failures(16),
        statements: new BatchStatements(),
      });
    const outcome = await batch();
    assert.equal(outcome.processed, 0);
    assert.equal(outcome.advanced, false);
    const [{ n }] = await db.sql.unsafe(
      `select count(*)::int as n from ${inSchema(store, "group_applied")}`,
    );
    assert.equal(n, 0, "a member without a live lease applied events");
    // With its lease live again, the same batch takes segments 8-15.
    await db.sql.unsafe(
      `update ${store.tables.checkpoints} set lease_expires_at = now() + interval '1 minute'
       where projection_name = 'stale' and segment >= 8`,
    );
    assert.ok((await batch()).processed > 0);
    const [{ wrong }] = await db.sql.unsafe(
      `select count(*)::int as wrong from ${inSchema(store, "group_applied")} where segment < 8`,
    );
    assert.equal(wrong, 0, "applied on b's segments");
  });

  it("runGroupMembers: members join together, catch up, every event once", async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 80, perAggregate: 5 });
    const outcomes = await caughtUp(runGroupMembers(
      db.client({ max: 6 }),
      store,
      groupProjection(store, "runner", "runner"),
      4,
      { mode: "until_caught_up", memberIdPrefix: "host", group: STEADY },
    ));
    assert.deepEqual(outcomes.map((o) => o.memberId), ["host-0", "host-1", "host-2", "host-3"]);
    assert.ok(outcomes.every((o) => o.status === "caught_up"));
    assert.equal(outcomes.reduce((n, o) => n + o.processed, 0), 400);
    // Joined together: each took its share from the start, none took all.
    assert.ok(outcomes.every((o) => o.processed > 0), JSON.stringify(outcomes));
    await assertExactlyOnce(db.sql, store, "runner", 5_000);
  });

  it("refuses to mix with static workers, both ways, with a PartitioningModeError", async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    await appendEvents(db.sql, store, { aggregates: 20, perAggregate: 2 });
    const a = member(db, store, "mixed", "a", STEADY);
    await waitBalanced(db.sql, store, "mixed", ["a"], 10_000, "a alone");
    const staticWorker = new ProjectionProcessor(db.sql, store, {
      partitionKey: 1,
      totalPartitions: 2,
    });
    await assert.rejects(
      within(staticWorker.run(groupProjection(store, "mixed", "static")), 10_000, "static run"),
      (e: unknown) => {
        assert.ok(e instanceof PartitioningModeError, String(e));
        assert.equal(e.mode, "static");
        assert.equal(e.holder, "a");
        return true;
      },
    );
    await a.stop();

    // Static workers ran: a group member refuses until their lease time has passed.
    const other = await db.freshStore();
    await createGroupModel(db.sql, other);
    await appendEvents(db.sql, other, { aggregates: 20, perAggregate: 2 });
    await caughtUp(
      new ProjectionProcessor(db.sql, other).run(groupProjection(other, "was_static", "s"), {
        mode: "until_caught_up",
      }),
    );
    const late = new ProjectionProcessor(db.sql, other, {
      group: { memberId: "g", leaseMs: 60_000 },
    });
    await assert.rejects(
      within(late.run(groupProjection(other, "was_static", "g")), 10_000, "group run"),
      (e: unknown) => {
        assert.ok(e instanceof PartitioningModeError, String(e));
        assert.equal(e.mode, "group");
        return true;
      },
    );
    const ownership = await segmentOwnership(db.sql, other, "was_static");
    assert.ok(ownership.segments.every((s) => s.mode === "static"));
    assert.deepEqual(ownership.members, [], "the refused member left");

    // A reset is no static worker's move: after it the group may take over at once.
    await resetProjection(db.sql, other, "was_static", { to: "now" });
    await caughtUp(
      new ProjectionProcessor(db.sql, other, { group: { memberId: "g2", leaseMs: 60_000 } })
        .run(groupProjection(other, "was_static", "g2"), { mode: "until_caught_up" }),
      "a group member after a reset",
    );
  });

  it("segmentOwnership: owner, since, last heartbeat and expiry by the database's clock", async () => {
    const store = await db.freshStore();
    await createGroupModel(db.sql, store);
    await assert.rejects(() => segmentOwnership(db.sql, store, ""), ValidationError);
    await assert.rejects(() => segmentOwnership(db.sql, {} as never, "x"), ValidationError);
    assert.deepEqual((await segmentOwnership(db.sql, store, "never")).segments, []);
    const a = member(db, store, "own", "a", STEADY);
    await waitBalanced(db.sql, store, "own", ["a"], 10_000, "a alone");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { segments, members, databaseTime } = await segmentOwnership(db.sql, store, "own");
    await a.stop();
    assert.equal(segments.length, 16);
    for (const s of segments) {
      assert.equal(s.mode, "group");
      assert.equal(s.ownerId, "a");
      assert.ok(s.live);
      assert.ok(s.since! <= s.lastHeartbeat!, "renewed after it was taken");
      assert.ok(s.lastHeartbeat! <= databaseTime);
      assert.ok(s.leaseExpiresAt! > databaseTime);
      assert.ok(s.leaseExpiresAt!.getTime() - s.lastHeartbeat!.getTime() <= STEADY.leaseMs + 5);
    }
    assert.equal(members.length, 1);
    assert.equal(members[0].memberId, "a");
    assert.equal(members[0].segments.length, 16);
    assert.ok(members[0].joinedAt <= members[0].lastHeartbeat);
  });
});
