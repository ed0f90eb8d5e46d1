/**
 * W6: the time from an append's commit (its promise resolving) to the
 * projection handler starting on that event, with NOTIFY and with polling
 * only; a hand-written LISTEN-then-SELECT loop is the reference.
 *
 * @module
 */

import type postgres from "postgres";
import type { PersistedEvent } from "../../src/es/mod.ts";
import type { PostgresStore } from "../../src/postgres/mod.ts";
import type { BenchDb } from "../db.ts";
import { eventsFor } from "../events.ts";
import { loadProjectionApi } from "../projection_api.ts";
import { result, type WorkloadResult } from "../result.ts";
import { interleave, type Sample } from "../stats.ts";
import { cpuNow, cpuSince } from "../cpu.ts";
import type { Config } from "../config.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let names = 0;

/**
 * A hand-written consumer: on each NOTIFY on `channel`, `attempt` reads
 * (and hands to the handler) until it finds the notified event, which may
 * not be below the horizon yet (another transaction still open): read
 * again until it is, as any correct consumer must, or a missed event would
 * stall the run. Runs until `signal` aborts.
 */
async function consumeOnNotify(
  sql: postgres.Sql,
  channel: string,
  signal: AbortSignal,
  attempt: () => Promise<boolean>,
  first: Promise<unknown> = Promise.resolve(),
): Promise<void> {
  let after = first.then(() => {});
  const { unlisten } = await sql.listen(channel, () => {
    after = after.then(async () => {
      for (let tries = 0; tries < 1000; tries++) {
        if (await attempt()) return;
        await sleep(1);
      }
    });
  });
  await new Promise((resolve) => signal.addEventListener("abort", resolve));
  await unlisten();
}

/**
 * Appends `count` events one by one, a random 5–25 ms apart, and returns
 * each event's commit-to-handler latency. `start` runs the consumer until
 * the signal aborts; `seen` is what its handler calls.
 */
async function measure(
  db: BenchDb,
  store: PostgresStore,
  count: number,
  start: (seen: (event: PersistedEvent) => void, signal: AbortSignal) => Promise<unknown>,
): Promise<Sample> {
  const writer = await db.client(1);
  const waiting = new Map<string, (t: number) => void>();
  const early = new Map<string, number>();
  const seen = (event: PersistedEvent) => {
    const now = performance.now();
    const resolve = waiting.get(event.eventId);
    if (resolve) resolve(now);
    else early.set(event.eventId, now);
  };
  const abort = new AbortController();
  const consumer = start(seen, abort.signal);
  await sleep(300); // let the consumer catch up and go idle
  const latencies: number[] = [];
  const cpu = cpuNow();
  const begun = performance.now();
  try {
    for (let i = 0; i < count; i++) {
      const [event] = eventsFor(crypto.randomUUID(), 1);
      const appended = await store.append(writer, [event]);
      const committed = performance.now();
      const id = appended.events[0].eventId;
      // Bounded: a consumer that misses an event fails the run, naming it.
      const handled = early.get(id) ??
        await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`W6: event ${id} not handled within 30 s`)),
            30_000,
          );
          waiting.set(id, (t) => {
            clearTimeout(timer);
            resolve(t);
          });
        });
      latencies.push(Math.max(0, handled - committed));
      await sleep(5 + Math.random() * 20);
    }
  } finally {
    abort.abort();
    await consumer.catch(() => {});
  }
  const seconds = (performance.now() - begun) / 1000;
  return { throughput: count / seconds, latencies, units: count, seconds, cpu: cpuSince(cpu) };
}

/** W6: wake-up latency. */
export async function w6(db: BenchDb, config: Config): Promise<WorkloadResult> {
  const api = await loadProjectionApi();
  const notes: string[] = [];
  const variants: Record<string, () => Promise<Sample>> = {};
  const listenStore = await db.freshStore();
  variants["hand-written LISTEN, then SELECT"] = async () => {
    const sql = await db.client(2);
    return await measure(db, listenStore, config.latencyAppends, async (seen, signal) => {
      let last: string | undefined;
      await consumeOnNotify(sql, listenStore.notifyChannel!, signal, async () => {
        const [row] = await sql`
          select event_id from ${sql(listenStore.tables.events)}
          where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          order by transaction_id desc, global_position desc limit 1`;
        if (!row || row.event_id === last) return false;
        last = row.event_id;
        seen({ eventId: row.event_id } as PersistedEvent);
        return true;
      }, listenStore.readEvents(sql, { limit: 1 }));
    });
  };
  // The same consumer with what any consumer that keeps its checkpoint in
  // the handler's transaction must add: a transaction, one checkpoint row
  // locked with the read, moved before the commit. What the processor does
  // beyond it (sixteen segments' rows, the share's statement) is its own cost.
  const txStore = await db.freshStore();
  variants["hand-written LISTEN, then BEGIN, lock one checkpoint row with the SELECT"] =
    async () => {
      const sql = await db.client(2);
      const checkpoints = sql(txStore.tables.checkpoints);
      const events = sql(txStore.tables.events);
      const name = `wakeup_hand_${names++}`;
      await sql`
      insert into ${checkpoints} (projection_name, segment, segment_count, transaction_id,
        global_position)
      select ${name}, 0, 1, coalesce(max(transaction_id), '0'), coalesce(max(global_position), 0)
      from ${events}`;
      return await measure(db, txStore, config.latencyAppends, async (seen, signal) => {
        await consumeOnNotify(sql, txStore.notifyChannel!, signal, () =>
          sql.begin(async (tx) => {
            const rows = await tx`
              with cursor as materialized (
                select transaction_id, global_position from ${checkpoints}
                where projection_name = ${name} and segment = 0 for update)
              select e.event_id, e.transaction_id::text as tx, e.global_position
              from ${events} as e, cursor as c
              where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
                and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
              order by e.transaction_id, e.global_position limit 1000`;
            for (const row of rows) seen({ eventId: row.event_id } as PersistedEvent);
            const last = rows.at(-1);
            if (!last) return false;
            await tx`update ${checkpoints} set transaction_id = ${last.tx}::xid8,
              global_position = ${last.global_position}
              where projection_name = ${name} and segment = 0`;
            return true;
          }));
      });
    };
  if (api) {
    const notifying = await db.freshStore();
    const polling = await db.freshStore({ notifyChannel: false });
    const run = (store: PostgresStore, count: number) => async () => {
      const sql = await db.client(4);
      return measure(
        db,
        store,
        count,
        (seen, signal) =>
          api.processor(sql, store, { batchSize: 1000 }).run(
            { name: `wakeup_${names++}`, handle: (event) => seen(event) },
            { mode: "continuous", signal },
          ),
      );
    };
    variants["pupsourcing, NOTIFY (default)"] = run(notifying, config.latencyAppends);
    variants["pupsourcing, polling only (notifyChannel: false)"] = run(
      polling,
      Math.max(10, Math.round(config.latencyAppends / 4)),
    );
  } else notes.push("src/projection has no ProjectionProcessor yet: only the reference ran.");
  notes.push(
    "latency = handler start − the append's promise resolving (clamped at 0); appends 5–25 ms apart; processor defaults except batchSize",
  );
  const samples = await interleave(config.reps, variants);
  return result(
    "W6",
    "latency from append commit to handler start",
    samples,
    {},
    [
      { variant: "pupsourcing, NOTIFY (default)", p50MaxMs: 5 },
      {
        variant: "pupsourcing, NOTIFY (default)",
        p50Against: "hand-written LISTEN, then SELECT",
        max: 1.5,
      },
    ],
    notes,
    "appends/s",
  );
}
