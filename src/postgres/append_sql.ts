/**
 * The append statement's SQL text, built once per store and shape and
 * cached, with the order of its parameters.
 *
 * Building it from nested postgres.js fragments on every append cost a
 * one-event append about 40 µs of client CPU (twice the hand-written
 * statement's): a sequential appender ran 15% slower for it, eight
 * concurrent ones on two cores 20% slower. The text below is the statement
 * those fragments made; the parameters travel as text and are cast in SQL,
 * so a client's own serializers for `bytea`, `jsonb` or dates never touch
 * them.
 *
 * @module
 */

import type { PostgresStore } from "./store.ts";
import { quote } from "./tables.ts";

/** The values an append statement takes, by name. */
export interface AppendValues {
  aggregateType: string;
  aggregateId: string;
  /** The number of events. */
  count: number;
  /** The exact expected version, or `"-1"` for none. */
  exact: string;
  /** Whether the expected version is `"any"`. */
  any: boolean;
  hash: number;
  /** Array literal of the caller-chosen event ids. */
  known: string;
  /** One value per event column: plain text for one event, an array literal for several. */
  eventId: string;
  eventType: string;
  eventVersion: string;
  payload: string;
  metadata: string | null;
  traceId: string | null;
  correlationId: string | null;
  causationId: string | null;
  createdAt: string | null;
  channel: string;
}

/** What decides the statement's text. */
export interface AppendShape {
  /** The head may be created ("any", "no_stream", 0n), or must exist. */
  mayCreate: boolean;
  /** Some event ids were chosen by the caller and may be stored already. */
  checkIds: boolean;
  /** One event (plain parameters) or several (arrays). */
  single: boolean;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
}

/**
 * A statement as a tagged template's parts: `db(strings, ...values)` with
 * the values named by `order`. Going through the tagged-template call keeps
 * the client's own `prepare` setting (`db.unsafe` would not prepare).
 */
export interface AppendStatement {
  strings: TemplateStringsArray;
  order: (keyof AppendValues)[];
}

const cache = new WeakMap<PostgresStore, Map<string, AppendStatement>>();

/** The statement for `shape` on `store`'s tables. */
export function appendStatement(store: PostgresStore, shape: AppendShape): AppendStatement {
  const key = `${+shape.mayCreate}${+shape.checkIds}${+shape.single}${+shape.notify}`;
  let byShape = cache.get(store);
  if (!byShape) cache.set(store, byShape = new Map());
  let statement = byShape.get(key);
  if (!statement) byShape.set(key, statement = build(store, shape));
  return statement;
}

function build(store: PostgresStore, shape: AppendShape): AppendStatement {
  // Placeholders are marked with their name and become the template's
  // holes, in the order they appear in the text.
  const $ = (name: keyof AppendValues) => `\u0000${name}\u0000`;
  const events = quote(store.tables.events);
  const heads = quote(store.tables.aggregateHeads);
  const type = () => `${$("aggregateType")}::text`;
  const id = () => `${$("aggregateId")}::text`;
  const count = () => `${$("count")}::int8`;
  const unstored = () =>
    shape.checkIds
      ? `and not exists (select from ${events} where event_id = any(${$("known")}::text::uuid[]))`
      : "";
  // The events are filed under the greater of this transaction's id and
  // the one the aggregate's newest event was filed under. A transaction
  // that got its id before another appended to the aggregate and committed
  // would otherwise put its later version first in the log. Filing under a
  // greater id stays gap-safe: readers pass an id only once every
  // transaction below it has ended, this one included.
  const moved = `aggregate_version = h.aggregate_version + ${count()},
        last_transaction_id = greatest(h.last_transaction_id, pg_current_xact_id()),
        updated_at = now()`;
  const returning = `returning h.aggregate_version - ${count()} as from_version,
        h.last_transaction_id as log_transaction_id`;
  const head = shape.mayCreate
    ? `insert into ${heads} as h (aggregate_type, aggregate_id, aggregate_version)
      select ${type()}, ${id()}, ${count()}
      where true ${unstored()}
      on conflict (aggregate_type, aggregate_id) do update set ${moved}
        where ${$("any")}::boolean
      ${returning}`
    : `update ${heads} as h set ${moved}
      where h.aggregate_type = ${type()} and h.aggregate_id = ${id()}
        and (${$("exact")}::text::int8 < 0 or h.aggregate_version = ${$("exact")}::text::int8)
        ${unstored()}
      ${returning}`;
  const insertHead = `insert into ${events} (
        transaction_id, aggregate_type, aggregate_id, aggregate_version, aggregate_id_hash,
        event_id, event_type, event_version, payload, metadata, trace_id, correlation_id,
        causation_id, created_at)
      select head.log_transaction_id, ${type()}, ${id()}, head.from_version + e.ord,
        ${$("hash")}::int8,
        e.event_id, e.event_type, e.event_version, e.payload, e.metadata, e.trace_id,
        e.correlation_id, e.causation_id, coalesce(e.created_at, now())`;
  const rows = shape.single
    ? `(select ${$("eventId")}::text::uuid as event_id, ${$("eventType")}::text as event_type,
        ${$("eventVersion")}::text::int4 as event_version,
        ${$("payload")}::text::bytea as payload,
        ${$("metadata")}::text::jsonb as metadata, ${$("traceId")}::text as trace_id,
        ${$("correlationId")}::text as correlation_id,
        ${$("causationId")}::text as causation_id,
        ${$("createdAt")}::text::timestamptz as created_at, 1::int8 as ord) as e`
    : `unnest(
        ${$("eventId")}::text::uuid[],
        ${$("eventType")}::text::text[],
        ${$("eventVersion")}::text::int4[],
        ${$("payload")}::text::bytea[],
        ${$("metadata")}::text::jsonb[],
        ${$("traceId")}::text::text[],
        ${$("correlationId")}::text::text[],
        ${$("causationId")}::text::text[],
        ${$("createdAt")}::text::timestamptz[]
      ) with ordinality as e(event_id, event_type, event_version, payload, metadata, trace_id,
                             correlation_id, causation_id, created_at, ord)`;
  const notify = shape.notify ? `, (select pg_notify(${$("channel")}::text, ${type()}))` : "";
  const text = `
    with head as (${head}),
    inserted as (
      ${insertHead}
      from head, ${rows}
      order by e.ord
      returning global_position, transaction_id, aggregate_version, created_at
    )
    select global_position, transaction_id, aggregate_version, created_at ${notify} from inserted`;
  // postgres.js rebuilds the text and its cache key on every call: keep it short.
  const pieces = text.replace(/\s+/g, " ").trim().split("\u0000");
  const parts = pieces.filter((_, i) => i % 2 === 0);
  const order = pieces.filter((_, i) => i % 2 === 1) as (keyof AppendValues)[];
  const strings = Object.assign([...parts], { raw: [...parts] });
  return { strings: Object.freeze(strings) as unknown as TemplateStringsArray, order };
}
