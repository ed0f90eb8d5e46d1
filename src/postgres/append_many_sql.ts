/**
 * The statement of an append to several aggregates: every head moved and
 * every event inserted by one statement, from arrays, or nothing at all.
 *
 * Each aggregate's head is upserted under its row lock, with its expected
 * version checked against the newest committed version (ON CONFLICT sees
 * it, whatever the statement's snapshot). A statement cannot undo the
 * heads it has moved when a later one is refused, so a refusal raises an
 * error instead, and the error rolls the whole statement back: a cast of a
 * marked text, the only way plain SQL has to raise. The text names the
 * first refused aggregate; {@linkcode refusedAggregate} reads it back.
 *
 * It answers with one row of arrays as text: the events' positions (their
 * order is the events' order), and each head's version before the append
 * and the transaction id its events are filed under; plus `now()`, every
 * event's default `created_at`. Rows of five columns per event cost the
 * client more to decode than the rest of the append.
 *
 * @module
 */

import type { PostgresStore } from "./store.ts";
import { quote } from "./tables.ts";
import { placeholder, type Template, template } from "./template.ts";

/** The values the statement takes, in the order of its parameters. */
export interface AppendManyValues {
  /** Array literals with one entry per aggregate, in lock order. */
  aggregateTypes: string;
  aggregateIds: string;
  counts: string;
  /** Per aggregate: -1 "any", -2 "stream_exists", else the exact version (0 "no_stream"). */
  expected: string;
  hashes: string;
  /** Array literals with one entry per event, in the caller's order. */
  aggregates: string;
  offsets: string;
  eventIds: string;
  eventTypes: string;
  eventVersions: string;
  payloads: string;
  metadata: string;
  traceIds: string;
  correlationIds: string;
  causationIds: string;
  createdAts: string;
  /** Array literal of the caller-chosen event ids. */
  known: string;
  /** The channel and the aggregate types to NOTIFY at the caller's commit. */
  channel: string;
  notifyTypes: string;
}

/** The statement, with its values named in order. */
export type AppendManyStatement = Template<keyof AppendManyValues>;

/** The marker the refusal's error text starts with. */
const REFUSED = "pupsourcing: append refused for aggregate ";

/** What decides the statement's text. */
export interface AppendManyShape {
  /** Some event ids were chosen by the caller and may be stored already. */
  checkIds: boolean;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
}

const cache = new WeakMap<PostgresStore, Map<string, AppendManyStatement>>();

/** The statement for `shape` on `store`'s tables. */
export function appendManyStatement(
  store: PostgresStore,
  shape: AppendManyShape,
): AppendManyStatement {
  const key = `${+shape.checkIds}${+shape.notify}`;
  let byShape = cache.get(store);
  if (!byShape) cache.set(store, byShape = new Map());
  let statement = byShape.get(key);
  if (!statement) byShape.set(key, statement = build(store, shape));
  return statement;
}

/**
 * The index (from 1, in lock order) of the aggregate whose expected
 * version the statement refused, if `error` is that refusal.
 */
export function refusedAggregate(error: unknown): number | undefined {
  const e = error as { code?: string; message?: string };
  if (e?.code !== "22P02" || typeof e.message !== "string") return undefined;
  const at = e.message.indexOf(REFUSED);
  return at < 0 ? undefined : parseInt(e.message.slice(at + REFUSED.length), 10);
}

function build(store: PostgresStore, shape: AppendManyShape): AppendManyStatement {
  const $ = placeholder<keyof AppendManyValues>;
  const events = quote(store.tables.events);
  const heads = quote(store.tables.aggregateHeads);
  // A head is refused when ON CONFLICT's condition fails (no row comes
  // back), or when it was created but had to exist already.
  // A stored caller-chosen id moves no head, so the statement is refused
  // before it takes a position; the caller then tells a retry from a
  // duplicate. Without such ids the check is left out, as in the
  // one-aggregate append (a generic plan would scan the table for it).
  const unstored = shape.checkIds
    ? `where not exists (select from ${events} where event_id = any(${$("known")}::text::uuid[]))`
    : "";
  const notify = shape.notify
    ? `, (select count(pg_notify(${$("channel")}::text, t))
         from unnest(${$("notifyTypes")}::text::text[]) as t)`
    : "";
  const held =
    `h.aggregate_id is not null and (h.aggregate_version > i.n or i.expected in (-1, 0))`;
  const text = `
    with input as (
      select * from unnest(
        ${$("aggregateTypes")}::text::text[], ${$("aggregateIds")}::text::text[],
        ${$("counts")}::text::int8[], ${$("expected")}::text::int8[], ${$("hashes")}::text::int8[]
      ) with ordinality as a(aggregate_type, aggregate_id, n, expected, hash, k)
    ),
    head as (
      insert into ${heads} as h (aggregate_type, aggregate_id, aggregate_version)
      select aggregate_type, aggregate_id, n from input ${unstored} order by k
      on conflict (aggregate_type, aggregate_id) do update set
        aggregate_version = h.aggregate_version + excluded.aggregate_version,
        last_transaction_id = greatest(h.last_transaction_id, pg_current_xact_id()),
        updated_at = now()
      where (select i.expected from input i
             where i.aggregate_type = excluded.aggregate_type
               and i.aggregate_id = excluded.aggregate_id) in (-1, -2, h.aggregate_version)
      returning h.aggregate_type, h.aggregate_id, h.aggregate_version, h.last_transaction_id
    ),
    verdict as (
      select bool_and(coalesce(${held}, false)) as held,
        min(i.k) filter (where not coalesce(${held}, false)) as refused
      from input i left join head h using (aggregate_type, aggregate_id)
    ),
    placed as (
      select array_agg(i.aggregate_type order by i.k) as aggregate_type,
        array_agg(i.aggregate_id order by i.k) as aggregate_id,
        array_agg(i.hash order by i.k) as hash,
        array_agg(h.aggregate_version - i.n order by i.k) as from_version,
        array_agg(h.last_transaction_id order by i.k) as transaction_id
      from input i join head h using (aggregate_type, aggregate_id)
    ),
    inserted as (
      insert into ${events} (
        transaction_id, aggregate_type, aggregate_id, aggregate_version, aggregate_id_hash,
        event_id, event_type, event_version, payload, metadata, trace_id, correlation_id,
        causation_id, created_at)
      select p.transaction_id[e.aggregate], p.aggregate_type[e.aggregate],
        p.aggregate_id[e.aggregate], p.from_version[e.aggregate] + e.offset_in_aggregate,
        p.hash[e.aggregate],
        e.event_id, e.event_type, e.event_version, e.payload, e.metadata, e.trace_id,
        e.correlation_id, e.causation_id, coalesce(e.created_at, now())
      from placed p, unnest(
        ${$("aggregates")}::text::int4[], ${$("offsets")}::text::int8[],
        ${$("eventIds")}::text::uuid[], ${$("eventTypes")}::text::text[],
        ${$("eventVersions")}::text::int4[], ${$("payloads")}::text::bytea[],
        ${$("metadata")}::text::jsonb[], ${$("traceIds")}::text::text[],
        ${$("correlationIds")}::text::text[], ${$("causationIds")}::text::text[],
        ${$("createdAts")}::text::timestamptz[]
      ) with ordinality as e(aggregate, offset_in_aggregate, event_id, event_type, event_version,
                             payload, metadata, trace_id, correlation_id, causation_id,
                             created_at, ord)
      order by e.ord
      returning global_position
    )
    select (select array_agg(global_position order by global_position) from inserted)::text,
      p.from_version::text, p.transaction_id::text, now() ${notify}
    from placed p
    where (select case when held then true else ('${REFUSED}' || refused)::boolean end
           from verdict)`;
  return template(text);
}
