/**
 * The ceilings: the same work as the library, hand-written as the best
 * single statement through postgres.js, on the same tables, with the same
 * data: UUIDv7 event ids like the store's (random v4 ids are cheaper to
 * insert on a small table, where time-ordered ids all land on the index's
 * last page; measured 0.97 against 0.92 with 8 clients).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type postgres from "postgres";
import { fnv1a32 } from "../src/es/segment.ts";
import { uuidv7 } from "../src/es/uuid.ts";
import type { Event } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";

type Sql = postgres.Sql | postgres.TransactionSql;

/** Every column of an event, in the order the hand-written reads index them. */
export const COLUMNS: string[] = [
  "global_position",
  "transaction_id",
  "aggregate_type",
  "aggregate_id",
  "aggregate_version",
  "event_id",
  "event_type",
  "event_version",
  "payload",
  "metadata",
  "trace_id",
  "correlation_id",
  "causation_id",
  "created_at",
];

/**
 * The select list of a hand-written read: postgres.js's own `bytea`
 * decoding (hex), or the payload as base64 text decoded with `Buffer`.
 */
export function columns(sql: Sql, base64: boolean) {
  return base64
    ? sql.unsafe(COLUMNS.map((c) => c === "payload" ? "encode(payload, 'base64')" : c).join(", "))
    : sql(COLUMNS);
}

/** The payload of a hand-written read's row, as bytes. */
export function payloadOf(value: unknown, base64: boolean): Uint8Array {
  return base64 ? Buffer.from(value as string, "base64") : value as Uint8Array;
}

/** Whether an event carries metadata and the trace ids: then the ceilings write them too. */
function traced(event: Event): boolean {
  return event.metadata != null || event.traceId != null;
}

/** The columns of the trace fields, after the required ones. */
const TRACE_COLUMNS = ", metadata, trace_id, correlation_id, causation_id";

/** An event's id: the caller's, or a new UUIDv7 as the store would choose. */
const idOf = (event: Event) => event.eventId ?? uuidv7();

/** The event insert both hand-written appends end with, numbered by the `head` CTE. */
function insertAfterHead(sql: Sql, store: PostgresStore, event: Event) {
  const trace = traced(event)
    ? sql`, ${JSON.stringify(event.metadata)}::jsonb, ${event.traceId ?? null},
      ${event.correlationId ?? null}, ${event.causationId ?? null}`
    : sql``;
  return sql`
    insert into ${sql(store.tables.events)} (aggregate_type, aggregate_id, aggregate_version,
      aggregate_id_hash, event_id, event_type, payload${
    sql.unsafe(traced(event) ? TRACE_COLUMNS : "")
  })
    select ${event.aggregateType}, ${event.aggregateId}, head.aggregate_version,
      ${fnv1a32(event.aggregateId)}, ${idOf(event)}, ${event.eventType}, ${event.payload}${trace}
    from head
    returning global_position, transaction_id, created_at`;
}

/** One event to a new aggregate: head insert + event insert, one statement. */
export function appendNew(sql: Sql, store: PostgresStore, event: Event): Promise<unknown> {
  const { aggregateHeads } = store.tables;
  return sql`
    with head as (
      insert into ${sql(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
      values (${event.aggregateType}, ${event.aggregateId}, 1)
      on conflict do nothing
      returning aggregate_version)
    ${insertAfterHead(sql, store, event)}
  `.values();
}

/** One event to an aggregate at exactly `version`: head update + event insert. */
export function appendAt(
  sql: Sql,
  store: PostgresStore,
  event: Event,
  version: number,
): Promise<unknown> {
  if (version === 0) return appendNew(sql, store, event);
  const { aggregateHeads } = store.tables;
  return sql`
    with head as (
      update ${
    sql(aggregateHeads)
  } set aggregate_version = aggregate_version + 1, updated_at = now()
      where aggregate_type = ${event.aggregateType} and aggregate_id = ${event.aggregateId}
        and aggregate_version = ${version}
      returning aggregate_version)
    ${insertAfterHead(sql, store, event)}
  `.values();
}

/**
 * Many events, any number of aggregates, one statement: heads upserted from
 * arrays, events inserted from arrays (new aggregates only).
 */
export function appendUnnest(sql: Sql, store: PostgresStore, batch: Event[]): Promise<unknown> {
  const { events, aggregateHeads } = store.tables;
  const counts = new Map<string, number>();
  for (const e of batch) counts.set(e.aggregateId, (counts.get(e.aggregateId) ?? 0) + 1);
  const ids = [...counts.keys()];
  const version = new Map<string, number>();
  const versions = batch.map((e) => {
    const v = (version.get(e.aggregateId) ?? 0) + 1;
    version.set(e.aggregateId, v);
    return v;
  });
  const type = batch[0].aggregateType;
  const text = (pick: (e: Event) => string | null | undefined) =>
    sql.array(batch.map((e) => pick(e) ?? null) as string[], 25);
  const trace = traced(batch[0])
    ? sql`, ${text((e) => JSON.stringify(e.metadata))}::jsonb[], ${text((e) => e.traceId)}::text[],
      ${text((e) => e.correlationId)}::text[], ${text((e) => e.causationId)}::text[]`
    : sql``;
  const traceColumns = sql.unsafe(traced(batch[0]) ? TRACE_COLUMNS : "");
  return sql`
    with head as (
      insert into ${sql(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
      select ${type}, h.id, h.n from unnest(${sql.array(ids, 25)}::text[],
        ${sql.array(ids.map((id) => counts.get(id)!), 20)}::int8[]) as h(id, n)
      on conflict do nothing
      returning aggregate_id)
    insert into ${sql(events)} (aggregate_type, aggregate_id, aggregate_version,
      aggregate_id_hash, event_id, event_type, payload${traceColumns})
    select ${type}, e.*
    from unnest(${sql.array(batch.map((e) => e.aggregateId), 25)}::text[],
      ${sql.array(versions, 20)}::int8[],
      ${sql.array(batch.map((e) => fnv1a32(e.aggregateId)), 20)}::int8[],
      ${sql.array(batch.map(idOf), 25)}::uuid[],
      ${sql.array(batch.map((e) => e.eventType), 25)}::text[],
      ${sql.array(batch.map((e) => e.payload), 17)}::bytea[]${trace}) as e(id)
    where e.id in (select aggregate_id from head)
    returning global_position
  `.values();
}

function copyField(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n");
}

function copyNullable(value: string | null | undefined): string {
  return value == null ? "\\N" : copyField(value);
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function byteaText(bytes: Uint8Array): string {
  let out = "\\\\x";
  for (const b of bytes) out += HEX[b];
  return out;
}

/**
 * The same batch through COPY: one transaction with the heads insert and a
 * COPY FROM STDIN of the events (text format).
 */
export function appendCopy(
  sql: postgres.Sql,
  store: PostgresStore,
  batch: Event[],
): Promise<unknown> {
  const { events, aggregateHeads } = store.tables;
  const counts = new Map<string, number>();
  for (const e of batch) counts.set(e.aggregateId, (counts.get(e.aggregateId) ?? 0) + 1);
  const ids = [...counts.keys()];
  const type = batch[0].aggregateType;
  return sql.begin(async (tx) => {
    const heads = await tx`
      insert into ${tx(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
      select ${type}, h.id, h.n from unnest(${tx.array(ids, 25)}::text[],
        ${tx.array(ids.map((id) => counts.get(id)!), 20)}::int8[]) as h(id, n)
      on conflict do nothing
      returning aggregate_id`.values();
    if (heads.length !== ids.length) throw new Error("aggregate exists");
    const version = new Map<string, number>();
    let text = "";
    for (const e of batch) {
      const v = (version.get(e.aggregateId) ?? 0) + 1;
      version.set(e.aggregateId, v);
      text += `${copyField(type)}\t${copyField(e.aggregateId)}\t${v}\t${fnv1a32(e.aggregateId)}\t${
        idOf(e)
      }\t${copyField(e.eventType)}\t${byteaText(e.payload)}${
        traced(e)
          ? `\t${copyField(JSON.stringify(e.metadata))}\t${copyNullable(e.traceId)}\t${
            copyNullable(e.correlationId)
          }\t${copyNullable(e.causationId)}`
          : ""
      }\n`;
    }
    const writable = await tx`
      copy ${tx(events)} (aggregate_type, aggregate_id, aggregate_version, aggregate_id_hash,
        event_id, event_type, payload${tx.unsafe(traced(batch[0]) ? TRACE_COLUMNS : "")})
      from stdin`.writable();
    await new Promise<void>((resolve, reject) => {
      writable.on("error", reject);
      writable.end(text, () => resolve());
    });
  });
}
