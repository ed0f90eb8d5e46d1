/**
 * The parked-events table as a batch uses it: which aggregates of a batch
 * have parked events open, and recording an event as parked or skipped,
 * in the batch's transaction (so it happens exactly once, with the
 * checkpoint that moves past the event). The table is projection state,
 * like the checkpoints; the events themselves stay in the log.
 *
 * @module
 */

import type { PersistedEvent } from "../es/event.ts";
import { arrayLiteral, type Db, table } from "../postgres/internal.ts";
import type { Target } from "./target.ts";

/**
 * What a parked row says about its event: `parked` (waiting for a replay
 * or a discard), `skipped`, `resolved` (replayed) or `discarded`.
 *
 * @example
 * ```ts
 * import type { ParkedStatus } from "@getpup/pupsourcing/projection";
 *
 * const waiting: ParkedStatus = "parked";
 * ```
 */
export type ParkedStatus = "parked" | "skipped" | "resolved" | "discarded";
/**
 * Why an event was parked: its handler failed, or it waits behind one of
 * its aggregate that did.
 *
 * @example
 * ```ts
 * import type { ParkedReason } from "@getpup/pupsourcing/projection";
 *
 * const reason: ParkedReason = "held";
 * ```
 */
export type ParkedReason = "failed" | "held";

/** An aggregate as one string key: its type and id. */
export function aggregateKey(event: Pick<PersistedEvent, "aggregateType" | "aggregateId">): string {
  return `${event.aggregateType}\u0000${event.aggregateId}`;
}

/**
 * The aggregates among `events` that have an event parked (and not yet
 * replayed or discarded) for this projection: their later events must
 * wait behind it.
 */
export async function openParkedAggregates(
  db: Db,
  target: Target,
  events: readonly PersistedEvent[],
): Promise<Set<string>> {
  const ids = [...new Set(events.map((event) => event.aggregateId))];
  const rows = await db`
    select distinct aggregate_type, aggregate_id from ${table(db, target.tables.parkedEvents)}
    where projection_name = ${target.name} and status = 'parked'
      and aggregate_id = any(${arrayLiteral(ids)}::text[])
  `.values();
  return new Set(
    rows.map(([aggregateType, aggregateId]) =>
      aggregateKey({ aggregateType: String(aggregateType), aggregateId: String(aggregateId) })
    ),
  );
}

/** Records `event` as parked or skipped for the projection, in the batch's transaction. */
export async function recordParked(
  db: Db,
  target: Target,
  event: PersistedEvent,
  entry: { status: "parked" | "skipped"; reason: ParkedReason; error?: string; attempts: number },
): Promise<void> {
  await db`
    insert into ${table(db, target.tables.parkedEvents)} (
      projection_name, global_position, transaction_id, event_id, aggregate_type, aggregate_id,
      aggregate_version, event_type, status, reason, error, attempts)
    values (
      ${target.name}, ${String(event.globalPosition)}::bigint,
      ${String(event.transactionId)}::xid8, ${event.eventId}::uuid, ${event.aggregateType},
      ${event.aggregateId}, ${String(event.aggregateVersion)}::bigint, ${event.eventType},
      ${entry.status}, ${entry.reason}, ${entry.error ?? null}, ${entry.attempts})
  `;
}

/** A handler's error as the text a parked row keeps. */
export function errorText(cause: unknown): string {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
}
