/**
 * Helpers of the consumer-group tests: a read model that records which
 * member applied each event and when (by the database's clock), an audit
 * of every change of a segment's lease holder, writers appending
 * meanwhile, and the checks of a settled group.
 *
 * @module
 */

import assert from "node:assert/strict";
import type postgres from "postgres";
import { segmentOf } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { type Projection, segmentOwnership } from "../src/projection/mod.ts";
import { waitUntil } from "./_bounds.ts";
import { json } from "./_db.ts";
import { balanceProjection, createBalances } from "./_poison.ts";
import { inSchema } from "./_projection.ts";

/**
 * Creates `balances`/`violations` (see `_poison.ts`), `group_applied`
 * (event, member, segment, when) and a trigger that writes every change
 * of a checkpoint's `owner_id` to `lease_audit`, with the old lease's
 * expiry and the time of the change.
 */
export async function createGroupModel(sql: postgres.Sql, store: PostgresStore): Promise<void> {
  await createBalances(sql, store);
  const applied = inSchema(store, "group_applied");
  const audit = inSchema(store, "lease_audit");
  const fn = inSchema(store, "audit_lease");
  await sql.unsafe(`
    create table ${applied} (
      event_id uuid not null, member_id text not null, segment int not null,
      applied_at timestamptz not null default clock_timestamp());
    create table ${audit} (
      segment int not null, old_owner text, new_owner text,
      old_expires timestamptz, changed_at timestamptz not null default clock_timestamp());
    create function ${fn}() returns trigger language plpgsql as $$
    begin
      if old.owner_id is distinct from new.owner_id then
        insert into ${audit} (segment, old_owner, new_owner, old_expires)
        values (new.segment, old.owner_id, new.owner_id, old.lease_expires_at);
      end if;
      return new;
    end $$;
    create trigger audit_lease after update on ${store.tables.checkpoints}
      for each row execute function ${fn}();`);
}

/** The balances projection, recording which member applied each event. */
export function groupProjection(
  store: PostgresStore,
  name: string,
  memberId: string,
  slowMs = 0,
): Projection {
  const balances = balanceProjection(store, name, { failing: false, slowMs });
  const applied = inSchema(store, "group_applied");
  return {
    name,
    async handle(event, tx) {
      await balances.handle(event, tx);
      await tx.unsafe(
        `insert into ${applied} (event_id, member_id, segment) values ($1, $2, $3)`,
        [event.eventId, memberId, segmentOf(event.aggregateId, 16)],
      );
    },
  };
}

/**
 * Lease changes where one member took a segment from another whose lease
 * was still running: there must be none.
 */
export async function stolenLeases(sql: postgres.Sql, store: PostgresStore): Promise<unknown[]> {
  return [
    ...await sql.unsafe(`
    select * from ${inSchema(store, "lease_audit")}
    where old_owner is not null and old_owner <> '(static)' and new_owner is not null
      and old_owner <> new_owner and old_expires > changed_at`),
  ];
}

/**
 * Events a member applied while it did not hold the segment's lease: the
 * last lease change of the segment before the event's apply time must
 * have given it to that member. There must be none.
 */
export async function appliedWithoutLease(
  sql: postgres.Sql,
  store: PostgresStore,
): Promise<unknown[]> {
  return [
    ...await sql.unsafe(`
    select a.* from ${inSchema(store, "group_applied")} a
    where (select l.new_owner from ${inSchema(store, "lease_audit")} l
           where l.segment = a.segment and l.changed_at <= a.applied_at
           order by l.changed_at desc limit 1) is distinct from a.member_id`),
  ];
}

/** Appends to aggregates `w<writer>-<n>` in a loop until stopped. */
export function startWriters(
  clients: postgres.Sql[],
  store: PostgresStore,
  aggregates = 40,
): { stop(): Promise<number> } {
  let stopped = false;
  let appended = 0;
  const loops = clients.map(async (sql, writer) => {
    for (let i = 0; !stopped; i++) {
      const aggregateId = `w${writer}-${(i * 7) % aggregates}`;
      const count = 1 + (i % 3);
      await store.append(
        sql,
        Array.from({ length: count }, () => ({
          aggregateType: "Account",
          aggregateId,
          eventType: "Deposited",
          payload: json({ writer, i }),
        })),
      );
      appended += count;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return appended;
    },
  };
}

/**
 * Waits until the group is exactly `members`, every segment held by a
 * live lease of one of them, each holding ⌊S/N⌋ or ⌈S/N⌉.
 */
export async function waitBalanced(
  sql: postgres.Sql,
  store: PostgresStore,
  name: string,
  members: readonly string[],
  ms: number,
  what: string,
): Promise<void> {
  const expected = [...members].sort();
  let last = "";
  try {
    await waitUntil(
      `${what}: the group ${expected.join(",")} to settle`,
      async () => {
        const ownership = await segmentOwnership(sql, store, name);
        last = ownership.segments.map((s) => `${s.segment}=${s.live ? s.ownerId : "-"}`).join(" ");
        const ids = ownership.members.map((m) => m.memberId);
        if (JSON.stringify(ids) !== JSON.stringify(expected)) return false;
        if (!ownership.segments.every((s) => s.live && expected.includes(s.ownerId!))) return false;
        const floor = Math.floor(16 / expected.length);
        return ownership.members.every((m) =>
          m.segments.length === floor || m.segments.length === floor + 1
        );
      },
      ms,
      50,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${last}`);
  }
}

/** Waits until every aggregate's balance has its last version, then checks exactly once. */
export async function assertExactlyOnce(
  sql: postgres.Sql,
  store: PostgresStore,
  name: string,
  ms: number,
): Promise<void> {
  const heads = inSchema(store, "balances");
  const query = `
    select count(*)::int as behind from ${store.tables.aggregateHeads} h
    left join ${heads} b on b.aggregate_id = h.aggregate_id and b.projection = $1
    where b.version is distinct from h.aggregate_version`;
  await waitUntil(
    `every event applied by ${name}`,
    async () => {
      const [{ behind }] = await sql.unsafe(query, [name]);
      return behind === 0;
    },
    ms,
    50,
  );
  const [{ violations, wrong }] = await sql.unsafe(
    `select (select count(*)::int from ${inSchema(store, "violations")} where projection = $1)
       as violations,
     (select count(*)::int from ${heads} where projection = $1
       and total <> version * (version + 1) / 2) as wrong`,
    [name],
  );
  assert.equal(violations, 0, "events applied twice, out of order or after a gap");
  assert.equal(wrong, 0, "balances whose total is not 1 + 2 + ... + version");
  const [{ twice }] = await sql.unsafe(
    `select count(*)::int as twice from (select event_id from ${
      inSchema(store, "group_applied")
    } group by event_id having count(*) > 1) d`,
  );
  assert.equal(twice, 0, "events applied twice");
}
