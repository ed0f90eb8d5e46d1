/**
 * The append statement's SQL text, built once per store and shape and
 * cached, with the order of its parameters.
 *
 * Building it from nested postgres.js fragments on every append cost a
 * one-event append about 40 µs of client CPU (twice the hand-written
 * statement's): a sequential appender ran 15% slower for it, eight
 * concurrent ones on two cores 20% slower. The parameters travel as text
 * and are cast in SQL, so a client's own serializers for `bytea`, `jsonb`
 * or dates never touch them.
 *
 * postgres.js spends client CPU on every parameter (type inference,
 * serialization, its share of the Bind message), so each value is sent
 * once: the aggregate comes back from the head's `RETURNING` for the event
 * insert, a one-event append's count is the literal 1, and the columns
 * with defaults (`event_version` through `created_at`) are left out
 * when no event of the append sets them. A one-event append to a new
 * aggregate sends 6 parameters instead of 18.
 *
 * @module
 */

import type { Event } from "../es/event.ts";
import { byteaHex } from "./db.ts";
import type { PostgresStore } from "./store.ts";
import { quote } from "./tables.ts";
import { cachedBuild, placeholder, type Template, template } from "./template.ts";

/** The values an append statement takes, by name. */
export interface AppendValues {
  aggregateType: string;
  aggregateId: string;
  /** The number of events (used when there are several). */
  count: number;
  /** The exact expected version for an `"update"` head, or `null` for any existing one. */
  exact: string | null;
  hash: number;
  /** Array literal of the caller-chosen event ids. */
  known: string;
  /** One value per event column: plain text for one event, an array literal for several. */
  eventId: string;
  eventType: string;
  payload: string;
  eventVersion: string;
  metadata: string | null;
  traceId: string | null;
  correlationId: string | null;
  causationId: string | null;
  createdAt: string | null;
  channel: string;
}

/** What decides the statement's text. */
export interface AppendShape {
  /**
   * How the head moves: `"create"` a new aggregate only ("no_stream", 0n),
   * `"upsert"` a new or existing one ("any"), `"update"` an existing one
   * ("stream_exists", an exact version).
   */
  head: "create" | "upsert" | "update";
  /** Some event ids were chosen by the caller and may be stored already. */
  checkIds: boolean;
  /** One event (plain parameters) or several (arrays). */
  single: boolean;
  /** Some event sets a column that has a default (event version, metadata, ids, time). */
  optional: boolean;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
}

/** The statement, with its values named in order. */
export type AppendStatement = Template<keyof AppendValues>;

/** The statement for `shape` on `store`'s tables. */
export const appendStatement: (store: PostgresStore, shape: AppendShape) => AppendStatement =
  cachedBuild(
    (shape: AppendShape) =>
      `${shape.head}${+shape.checkIds}${+shape.single}${+shape.optional}${+shape.notify}`,
    build,
  );

/** A column written from a parameter, with the parameter's name and the column's type. */
export interface ParameterColumn<Name extends string = keyof AppendValues> {
  column: string;
  name: Name;
  type: string;
}

/** The parameters that carry an event's own columns. */
export type EventColumnName =
  | "eventId"
  | "eventType"
  | "payload"
  | "eventVersion"
  | "metadata"
  | "traceId"
  | "correlationId"
  | "causationId"
  | "createdAt";

/** An event column a caller sets. */
type EventColumn = ParameterColumn<EventColumnName>;

/** The columns every append writes. */
const REQUIRED: EventColumn[] = [
  { column: "event_id", name: "eventId", type: "uuid" },
  { column: "event_type", name: "eventType", type: "text" },
  { column: "payload", name: "payload", type: "bytea" },
];

/** The columns with defaults, written only when some event of the append sets one. */
const OPTIONAL: EventColumn[] = [
  { column: "event_version", name: "eventVersion", type: "int4" },
  { column: "metadata", name: "metadata", type: "jsonb" },
  { column: "trace_id", name: "traceId", type: "text" },
  { column: "correlation_id", name: "correlationId", type: "text" },
  { column: "causation_id", name: "causationId", type: "text" },
  { column: "created_at", name: "createdAt", type: "timestamptz" },
];

/**
 * The event columns an append writes: the required ones, and the ones
 * with defaults when some event sets one (see {@linkcode setsOptional}).
 */
export function eventColumns(optional: boolean): EventColumn[] {
  return optional ? [...REQUIRED, ...OPTIONAL] : REQUIRED;
}

/** Whether an event sets a column that has a default, so the append must write them. */
export function setsOptional(event: Event): boolean {
  return event.eventVersion !== undefined || event.metadata != null || event.traceId != null ||
    event.correlationId != null || event.causationId != null || event.createdAt !== undefined;
}

/** One event's value for the column `name`, as the text the statement casts. */
export function eventValue(name: EventColumnName, event: Event, eventId: string): string | null {
  switch (name) {
    case "eventId":
      return eventId;
    case "eventType":
      return event.eventType;
    case "payload":
      return byteaHex(event.payload);
    case "eventVersion":
      return String(event.eventVersion ?? 1);
    case "metadata":
      return event.metadata === undefined || event.metadata === null
        ? null
        : JSON.stringify(event.metadata);
    case "traceId":
      return event.traceId ?? null;
    case "correlationId":
      return event.correlationId ?? null;
    case "causationId":
      return event.causationId ?? null;
    case "createdAt":
      return event.createdAt?.toISOString() ?? null;
  }
}

const $ = placeholder<keyof AppendValues>;

function build(store: PostgresStore, shape: AppendShape): AppendStatement {
  const events = quote(store.tables.events);
  const columns = eventColumns(shape.optional);
  const count = shape.single ? "1" : `${$("count")}::int8`;
  // A subquery on `head` alone: it runs once, and only when events were
  // inserted (otherwise append() sends the NOTIFY it claimed on its own).
  const notify = shape.notify
    ? `, (select pg_notify(${$("channel")}::text, head.aggregate_type) from head)`
    : "";
  // For several events, `e` is their arrays unnested, numbered by `ord`;
  // one event's values are the select list itself.
  const value = (c: EventColumn) =>
    shape.single ? `${$(c.name)}::text${c.type === "text" ? "" : `::${c.type}`}` : `e.${c.column}`;
  const values = columns.map((c) => withDefault(c, value(c)));
  const text = `
    with head as (${head(store, shape, count)})
    insert into ${events} (transaction_id, aggregate_type, aggregate_id, aggregate_version,
      aggregate_id_hash, ${columns.map((c) => c.column).join(", ")})
    select head.last_transaction_id, head.aggregate_type, head.aggregate_id,
      ${shape.single ? "head.aggregate_version" : `head.aggregate_version - ${count} + e.ord`},
      ${$("hash")}::int8, ${values.join(", ")}
    from head${shape.single ? "" : `, ${unnest(columns)} order by e.ord`}
    returning global_position, transaction_id, aggregate_version, created_at${notify}`;
  return template(text);
}

/** A column's value, or its default where the caller leaves it null. */
export function withDefault(column: ParameterColumn<string>, value: string): string {
  return column.column === "created_at" ? `coalesce(${value}, now())` : value;
}

/**
 * The head's move: it returns the aggregate, its new version and the
 * transaction id its events are filed under, or no row when the expected
 * version does not hold or an id is stored already.
 */
function head(store: PostgresStore, shape: AppendShape, count: string): string {
  const heads = quote(store.tables.aggregateHeads);
  const unstored = shape.checkIds
    ? `not exists (select from ${quote(store.tables.events)}
        where event_id = any(${$("known")}::text::uuid[]))`
    : "";
  const returning =
    "returning h.aggregate_type, h.aggregate_id, h.aggregate_version, h.last_transaction_id";
  if (shape.head === "update") {
    return `update ${heads} as h set ${movedHead(count)}
      where h.aggregate_type = ${$("aggregateType")}::text
        and h.aggregate_id = ${$("aggregateId")}::text
        and h.aggregate_version = coalesce(${$("exact")}::text::int8, h.aggregate_version)
        ${unstored && `and ${unstored}`}
      ${returning}`;
  }
  // A new head's version is the count, which `excluded` hands to the update.
  const conflict = shape.head === "create"
    ? "do nothing"
    : `(aggregate_type, aggregate_id) do update set ${movedHead("excluded.aggregate_version")}`;
  return `insert into ${heads} as h (aggregate_type, aggregate_id, aggregate_version)
    select ${$("aggregateType")}::text, ${$("aggregateId")}::text, ${count}
    ${unstored && `where ${unstored}`}
    on conflict ${conflict}
    ${returning}`;
}

/**
 * The SET list that moves an existing head `by` events.
 *
 * The events are filed under the greater of this transaction's id and the
 * one the aggregate's newest event was filed under. A transaction that got
 * its id before another appended to the aggregate and committed would
 * otherwise put its later version first in the log. Filing under a greater
 * id stays gap-safe: readers pass an id only once every transaction below
 * it has ended, this one included.
 */
export function movedHead(by: string): string {
  return `aggregate_version = h.aggregate_version + ${by},
    last_transaction_id = greatest(h.last_transaction_id, pg_current_xact_id()),
    updated_at = now()`;
}

/**
 * Several events' columns, each sent as one array literal, as the rows of
 * `e` numbered by `ord`.
 *
 * Each cast sits in a sub-select. PostgreSQL plans a prepared statement's
 * first five runs with the parameters' values, and folds a bare cast of a
 * known value while planning: parsing a thousand events' arrays that way
 * made those runs half again slower than the later ones (W3b: 0.90 of the
 * hand-written statement before, 0.97 after). A sub-select is evaluated
 * when the statement runs, as in the generic plan.
 */
export function unnest<Name extends string>(columns: ParameterColumn<Name>[]): string {
  const arrays = columns.map((c) => `(select ${placeholder(c.name)}::text::${c.type}[])`);
  return `unnest(${arrays.join(", ")})
    with ordinality as e(${columns.map((c) => c.column).join(", ")}, ord)`;
}
