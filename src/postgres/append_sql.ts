/**
 * The append statements' SQL text, built once per store and shape and
 * cached, with the order of their parameters: one for an append to one
 * aggregate, one for an append to several.
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
 * The append to several aggregates moves every head and inserts every
 * event in one statement, from arrays, or nothing at all. Each aggregate's
 * head is upserted under its row lock, then its expected version is
 * checked against the version it had: the newest committed one (ON
 * CONFLICT sees it, whatever the statement's snapshot). A statement cannot
 * undo the heads it has moved when one is refused, so a refusal raises an
 * error instead, and the error rolls the whole statement back: a cast of a
 * marked text, the only way plain SQL has to raise. The text names the
 * first refused aggregate; {@linkcode refusedAggregate} reads it back.
 * That statement answers with one row of arrays as text: the events'
 * positions (their order is the events' order), and each head's version
 * before the append and the transaction id its events are filed under;
 * plus `now()`, every event's default `created_at`. Rows of five columns
 * per event cost the client more to decode than the rest of the append.
 *
 * @module
 */

import type { Event } from "../es/event.ts";
import { jsonText } from "../es/validate.ts";
import { Buffer } from "node:buffer";
import { arrayLiteral } from "./db.ts";
import { EVENT_TABLE_COLUMNS } from "./schema.ts";
import { offsetSql, orderKeySql, regressionGuardSql } from "./order.ts";
import { quote, type ResolvedTables } from "./tables.ts";
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
  /**
   * One value per event column: plain text for one event, an array
   * literal for several (metadata: one JSON array).
   */
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
  /**
   * Skip the events whose id is stored already (`ON CONFLICT (event_id)
   * DO NOTHING`) instead of failing on the unique constraint, and answer
   * with the head's new version on each row, or on one row of nulls when
   * every event was skipped: for caller-chosen ids in a caller's
   * transaction, which a unique violation would abort. The append undoes
   * what such a statement wrote (see append.ts).
   */
  skipStored: boolean;
  /** One event (plain parameters) or several (arrays). */
  single: boolean;
  /**
   * The columns with a default (event version, metadata, ids, time) that
   * some event sets: see {@linkcode optionalColumns}.
   */
  optional: number;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
}

/** The statement, with its values named in order. */
export type AppendStatement = Template<keyof AppendValues>;

/** The statement for `shape` on a store's `tables`. */
export const appendStatement: (tables: ResolvedTables, shape: AppendShape) => AppendStatement =
  cachedBuild(
    (shape: AppendShape) =>
      `${shape.head}${+shape.skipStored}${+shape.single}.${shape.optional}.${+shape.notify}`,
    build,
  );

/** A column written from a parameter, with the parameter's name and the column's type. */
interface ParameterColumn<Name extends string = keyof AppendValues> {
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

/** The columns an append fills in itself; the caller sets the others. */
const ASSIGNED: ReadonlySet<string> = new Set([
  "global_position",
  "transaction_id",
  "aggregate_type",
  "aggregate_id",
  "aggregate_version",
  "aggregate_id_hash",
]);

/** The columns a caller sets, from the schema, each with its parameter's name (`event_id`: `eventId`). */
const CALLER: EventColumn[] = EVENT_TABLE_COLUMNS.filter((c) => !ASSIGNED.has(c.name)).map((c) => ({
  column: c.name,
  name: c.name.replace(/_(.)/g, (_, letter: string) => letter.toUpperCase()) as EventColumnName,
  type: c.type,
}));

/** Whether the schema gives the column a value when the append leaves it out. */
const hasDefault = (column: EventColumn) => {
  const rest = EVENT_TABLE_COLUMNS.find((c) => c.name === column.column)!.rest;
  return rest.includes("DEFAULT") || !rest.includes("NOT NULL");
};

/** The columns every append writes. */
const REQUIRED: EventColumn[] = CALLER.filter((c) => !hasDefault(c));

/** The columns with defaults, each written only when some event of the append sets it. */
const OPTIONAL: EventColumn[] = CALLER.filter(hasDefault);

/** Each column with a default as a bit of {@linkcode optionalColumns}. */
const BIT = Object.fromEntries(OPTIONAL.map((c, k) => [c.name, 1 << k])) as Partial<
  Record<EventColumnName, number>
>;

/**
 * The event columns an append writes: the required ones, and those with
 * defaults that some event sets (`optional`, see {@linkcode optionalColumns}).
 */
function eventColumns(optional: number): EventColumn[] {
  return [...REQUIRED, ...OPTIONAL.filter((_, k) => optional & (1 << k))];
}

/**
 * The columns with defaults that an event sets, one bit each: an append
 * writes those that some event of it sets, and leaves the others to their
 * defaults (events with metadata and trace ids sent a thousand event
 * versions of 1 and a thousand null times, which the server parsed).
 */
export function optionalColumns(event: Event): number {
  return (event.eventVersion !== undefined ? BIT.eventVersion ?? 0 : 0) |
    (event.metadata != null ? BIT.metadata ?? 0 : 0) |
    (event.traceId != null ? BIT.traceId ?? 0 : 0) |
    (event.correlationId != null ? BIT.correlationId ?? 0 : 0) |
    (event.causationId != null ? BIT.causationId ?? 0 : 0) |
    (event.createdAt !== undefined ? BIT.createdAt ?? 0 : 0);
}

/** One event's value for the column `name`, as the text the statement casts. */
export function eventValue(name: EventColumnName, event: Event, eventId: string): string | null {
  switch (name) {
    case "eventId":
      return eventId;
    case "eventType":
      return event.eventType;
    case "payload":
      return base64(event.payload);
    case "eventVersion":
      return String(event.eventVersion ?? 1);
    case "metadata":
      return event.metadata === undefined || event.metadata === null
        ? null
        : jsonText(event.metadata);
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

/**
 * Several events' values for the column `name`, as the text the statement
 * casts: an array literal with one entry per event, or, for metadata, one
 * JSON array.
 *
 * Built column by column without a regular expression where the values
 * cannot hold a quote or a backslash (ids, which are validated UUIDs,
 * base64, numbers, ISO times), and metadata as the JSON texts joined: as
 * an array literal entry each JSON text had every quote escaped, which,
 * with a second JSON.stringify, was the largest client cost of an append
 * with metadata (see `unnest`).
 */
export function eventColumn(
  name: EventColumnName,
  events: readonly Event[],
  ids: readonly string[],
): string {
  switch (name) {
    case "eventId":
      return list("{", ids.length, (i) => ids[i], "}");
    case "payload":
      // Quoted: a base64 text can be empty, or read NULL.
      return list("{", events.length, (i) => `"${base64(events[i].payload)}"`, "}");
    case "eventVersion":
      return list("{", events.length, (i) => String(events[i].eventVersion ?? 1), "}");
    case "metadata":
      return list("[", events.length, (i) => {
        const metadata = events[i].metadata;
        return metadata === undefined || metadata === null ? "null" : jsonText(metadata);
      }, "]");
    case "createdAt":
      return list("{", events.length, (i) => events[i].createdAt?.toISOString() ?? "NULL", "}");
    default:
      return arrayLiteral(events.map((event, i) => eventValue(name, event, ids[i])));
  }
}

/**
 * `n` entries separated by commas between `open` and `close`. Appended
 * one by one, as `arrayLiteral` does: `Array.prototype.join` over the
 * base64 texts cost Node several times as much (a 1000-event append:
 * 5 µs per event, against 0.1).
 */
function list(open: string, n: number, entry: (i: number) => string, close: string): string {
  let out = open;
  for (let i = 0; i < n; i++) out += i === 0 ? entry(i) : "," + entry(i);
  return out + close;
}

const $ = placeholder<keyof AppendValues>;

function build(tables: ResolvedTables, shape: AppendShape): AppendStatement {
  const events = quote(tables.events);
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
    shape.single
      ? `${$(c.name)}::text${sentAs(c) === "text" ? "" : `::${sentAs(c)}`}`
      : `e.${c.column}`;
  const values = columns.map((c) => columnValue(c, value(c)));
  const insert = `insert into ${events} (transaction_id, aggregate_type, aggregate_id,
      aggregate_version, aggregate_id_hash, ${columns.map((c) => c.column).join(", ")})
    select head.last_transaction_id, head.aggregate_type, head.aggregate_id,
      ${shape.single ? "head.aggregate_version" : `head.aggregate_version - ${count} + e.ord`},
      ${$("hash")}::int8, ${values.join(", ")}
    from head${shape.single ? "" : `, ${unnest(columns)} order by e.ord`}`;
  const returning = "global_position, transaction_id, aggregate_version, created_at";
  const text = shape.skipStored
    ? `with ${orderKey(tables)}, head as (${head(tables, shape, count)}),
      inserted as (${insert} on conflict (event_id) do nothing returning ${returning})
      select i.global_position, i.transaction_id, i.aggregate_version, i.created_at,
        head.aggregate_version ${notify}
      from head left join inserted i on true`
    : `with ${orderKey(tables)}, head as (${head(tables, shape, count)})
      ${insert} returning ${returning}${notify}`;
  return template(text);
}

/**
 * A column's value from its parameter: the payload decoded from base64,
 * metadata's JSON `null` made SQL's, `created_at` defaulted where the
 * caller leaves it null.
 */
function columnValue(column: ParameterColumn<string>, value: string): string {
  if (column.column === "payload") return `decode(${value}, 'base64')`;
  // Several events' metadata is one JSON array, where no metadata is `null`.
  if (column.column === "metadata") return `nullif(${value}, 'null'::jsonb)`;
  return column.column === "created_at" ? `coalesce(${value}, now())` : value;
}

/**
 * The type a column's parameter is cast to: its own, but text for the
 * payload, which travels as base64. As bytea's hex input it took twice
 * its size and, inside an array literal, an escaped backslash; base64 is
 * a third larger than the bytes, needs no escaping and is encoded
 * natively by every runtime (a 1000-event append: the same client CPU
 * under Node, up to a fifth less under Deno, a third fewer bytes sent).
 */
function sentAs(column: ParameterColumn<string>): string {
  return column.column === "payload" ? "text" : column.type;
}

/** `bytes` in base64. */
function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * The head's move: it returns the aggregate, its new version and the
 * transaction id its events are filed under, or no row when the expected
 * version does not hold.
 *
 * Whether an event id is stored already is not asked here: the unique
 * constraint on `event_id` tells, without a plan. A `not exists` over the
 * events table was asked here before, and its plan could go bad for good:
 * a prepared statement's generic plan made while the table was young
 * (empty, or never analyzed) scans the whole table, and each connection
 * keeps it (W1 with caller-chosen ids: 0.34 of the hand-written
 * statement; tests/append_plan_test.ts).
 */
function head(tables: ResolvedTables, shape: AppendShape, count: string): string {
  const heads = quote(tables.aggregateHeads);
  const returning =
    "returning h.aggregate_type, h.aggregate_id, h.aggregate_version, h.last_transaction_id";
  if (shape.head === "update") {
    return `update ${heads} as h set ${movedHead(count, "log_key.order_key")}
      from log_key
      where h.aggregate_type = ${$("aggregateType")}::text
        and h.aggregate_id = ${$("aggregateId")}::text
        and h.aggregate_version = coalesce(${$("exact")}::text::int8, h.aggregate_version)
      ${returning}`;
  }
  // A new head's version is the count, which `excluded` hands to the update.
  const conflict = shape.head === "create"
    ? "do nothing"
    : `(aggregate_type, aggregate_id) do update set ${
      movedHead("excluded.aggregate_version", "excluded.last_transaction_id")
    }`;
  return `insert into ${heads} as h (aggregate_type, aggregate_id, aggregate_version,
      last_transaction_id)
    select ${$("aggregateType")}::text, ${$("aggregateId")}::text, ${count}, order_key
    from log_key
    on conflict ${conflict}
    ${returning}`;
}

/**
 * The CTE `log_key`: this transaction's order key (see ./order.ts), in one
 * row, computed once for the whole statement, or the regression guard's
 * refusal of the whole statement when the log holds ids this cluster has
 * not issued. Every head's key is the key of an event in the log, so the
 * log's keys cover the heads too.
 */
function orderKey(tables: ResolvedTables, lockWaitMs?: number): string {
  const [before, after] = regressionGuardSql(tables);
  return `log_key as materialized (
      select ${orderKeySql(offsetSql(tables))} as order_key
      where ${before}null${after}${lockWaitMs === undefined ? "" : boundedLockWait(lockWaitMs)})`;
}

/**
 * A condition of `log_key` (true) that bounds the statement's waits for
 * row locks (and for the transactions of duplicate keys) by `ms`, unless
 * the session bounds them already (`lock_timeout` set): `log_key` is
 * computed before any head is locked, and the setting is local to the
 * statement's own transaction. Table locks, taken before it runs, are not
 * bounded: a lone append waits on them alike. CASE, not OR: it alone
 * settles the order in which its parts run.
 */
function boundedLockWait(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new RangeError(`lockWaitMs: expected a positive integer, got ${ms}`);
  }
  return `
        and case when current_setting('lock_timeout') = '0'
          then set_config('lock_timeout', '${ms}ms', true) is not null else true end`;
}

/**
 * The SET list that moves an existing head `by` events, filing them under
 * `key`, this transaction's order key, unless the aggregate's newest event
 * was filed under a greater one.
 *
 * A transaction that got its id before another appended to the aggregate
 * and committed would otherwise put its later version first in the log.
 * Filing under a greater id stays gap-safe: readers pass an id only once
 * every transaction below it has ended, this one included.
 */
function movedHead(by: string, key: string): string {
  return `aggregate_version = h.aggregate_version + ${by},
    last_transaction_id = greatest(h.last_transaction_id, ${key}),
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
 *
 * Metadata comes as one JSON array (see {@linkcode eventColumn}), its
 * elements taken in order beside the arrays' (`rows from` zips them as
 * `unnest` of several arrays does).
 */
function unnest<Name extends string>(columns: ParameterColumn<Name>[]): string {
  const rows = columns.map((c) =>
    c.column === "metadata"
      ? `jsonb_array_elements((select ${placeholder(c.name)}::text::jsonb))`
      : `unnest((select ${placeholder(c.name)}::text::${sentAs(c)}[]))`
  );
  return `rows from (${rows.join(", ")})
    with ordinality as e(${columns.map((c) => c.column).join(", ")}, ord)`;
}

/**
 * The values the statement takes. The event columns are named as in the
 * one-aggregate append, each an array literal with one entry per event,
 * in the caller's order.
 */
export interface AppendManyValues extends Pick<AppendValues, EventColumnName | "channel"> {
  /** Array literals with one entry per aggregate, in lock order. */
  aggregateTypes: string;
  aggregateIds: string;
  counts: string;
  /** Per aggregate: -1 "any", -2 "stream_exists", else the exact version (0 "no_stream"). */
  expected: string;
  hashes: string;
  /** Per event: its aggregate's place in lock order (from 1), and its own place in the aggregate's events (from 1). */
  aggregates: string;
  offsets: string;
  /** The aggregate types to NOTIFY at the caller's commit. */
  notifyTypes: string;
}

/** The statement, with its values named in order. */
export type AppendManyStatement = Template<keyof AppendManyValues>;

/** What decides the statement's text. */
export interface AppendManyShape {
  /** The columns with a default that some event sets: see {@linkcode optionalColumns}. */
  optional: number;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
  /**
   * The most the statement waits for a row lock, in milliseconds, unless
   * the session's `lock_timeout` says otherwise; unbounded when absent. Only
   * for a statement in a transaction of its own: the setting lasts as
   * long as the transaction.
   */
  lockWaitMs?: number;
}

/** The marker the refusal's error text starts with. */
const REFUSED = "pupsourcing: append refused for aggregate ";

/** The statement for `shape` on a store's `tables`. */
export const appendManyStatement: (
  tables: ResolvedTables,
  shape: AppendManyShape,
) => AppendManyStatement = cachedBuild(
  (shape: AppendManyShape) => `${shape.optional}.${+shape.notify}.${shape.lockWaitMs ?? ""}`,
  buildMany,
);

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

/** Where each event goes: its aggregate's place in lock order and its place among that aggregate's events. */
const PLACE: ParameterColumn<keyof AppendManyValues>[] = [
  { column: "aggregate", name: "aggregates", type: "int4" },
  { column: "offset_in_aggregate", name: "offsets", type: "int8" },
];

function buildMany(tables: ResolvedTables, shape: AppendManyShape): AppendManyStatement {
  const $ = placeholder<keyof AppendManyValues>;
  const events = quote(tables.events);
  const heads = quote(tables.aggregateHeads);
  const columns = eventColumns(shape.optional);
  // A stored event id fails the statement on the unique constraint, and
  // the caller then tells a retry from a duplicate: no plan reads the
  // events table for it (see head()).
  const notify = shape.notify
    ? `, (select count(pg_notify(${$("channel")}::text, t))
         from unnest(${$("notifyTypes")}::text::text[]) as t)`
    : "";
  // Every head is moved, then checked: its version before the append is
  // the new one less the count. A refused one is rolled back with the
  // rest, so there is no need to spare it the move (and a per-row lookup
  // of its expectation in ON CONFLICT's condition grew with the square of
  // the aggregates).
  const held = `h.aggregate_id is not null and (i.expected = -1
    or (i.expected = -2 and h.aggregate_version > i.n)
    or h.aggregate_version - i.n = i.expected)`;
  // `placed` holds each head's values in one array per column, which the
  // events index: joining them to their heads cost the statement more
  // than anything else it does.
  const text = `
    with ${orderKey(tables, shape.lockWaitMs)}, input as (
      select * from unnest(
        ${$("aggregateTypes")}::text::text[], ${$("aggregateIds")}::text::text[],
        ${$("counts")}::text::int8[], ${$("expected")}::text::int8[], ${$("hashes")}::text::int8[]
      ) with ordinality as a(aggregate_type, aggregate_id, n, expected, hash, k)
    ),
    head as (
      insert into ${heads} as h (aggregate_type, aggregate_id, aggregate_version,
        last_transaction_id)
      select aggregate_type, aggregate_id, n, order_key from input, log_key order by k
      on conflict (aggregate_type, aggregate_id) do update set
        ${movedHead("excluded.aggregate_version", "excluded.last_transaction_id")}
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
      insert into ${events} (transaction_id, aggregate_type, aggregate_id, aggregate_version,
        aggregate_id_hash, ${columns.map((c) => c.column).join(", ")})
      select p.transaction_id[e.aggregate], p.aggregate_type[e.aggregate],
        p.aggregate_id[e.aggregate], p.from_version[e.aggregate] + e.offset_in_aggregate,
        p.hash[e.aggregate], ${columns.map((c) => columnValue(c, `e.${c.column}`)).join(", ")}
      from placed p, ${unnest<string>([...PLACE, ...columns])}
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
