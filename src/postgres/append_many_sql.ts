/**
 * The statement of an append to several aggregates: every head moved and
 * every event inserted by one statement, from arrays, or nothing at all.
 *
 * Each aggregate's head is upserted under its row lock, then its expected
 * version is checked against the version it had: the newest committed one
 * (ON CONFLICT sees it, whatever the statement's snapshot). A statement
 * cannot undo the heads it has moved when one is refused, so a refusal
 * raises an error instead, and the error rolls the whole statement back: a cast of a
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

import type { AppendValues, EventColumnName } from "./append_sql.ts";
import {
  eventColumns,
  movedHead,
  type ParameterColumn,
  unnest,
  withDefault,
} from "./append_sql.ts";
import type { PostgresStore } from "./store.ts";
import { quote } from "./tables.ts";
import { cachedBuild, placeholder, type Template, template } from "./template.ts";

/**
 * The values the statement takes. The event columns are named as in the
 * one-aggregate append, each an array literal with one entry per event,
 * in the caller's order.
 */
export interface AppendManyValues
  extends Pick<AppendValues, EventColumnName | "known" | "channel"> {
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
  /** Some event ids were chosen by the caller and may be stored already. */
  checkIds: boolean;
  /** Some event sets a column that has a default. */
  optional: boolean;
  /** NOTIFY inside the statement (appends in a caller's transaction). */
  notify: boolean;
}

/** The marker the refusal's error text starts with. */
const REFUSED = "pupsourcing: append refused for aggregate ";

/** The statement for `shape` on `store`'s tables. */
export const appendManyStatement: (
  store: PostgresStore,
  shape: AppendManyShape,
) => AppendManyStatement = cachedBuild(
  (shape: AppendManyShape) => `${+shape.checkIds}${+shape.optional}${+shape.notify}`,
  build,
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

function build(store: PostgresStore, shape: AppendManyShape): AppendManyStatement {
  const $ = placeholder<keyof AppendManyValues>;
  const events = quote(store.tables.events);
  const heads = quote(store.tables.aggregateHeads);
  const columns = eventColumns(shape.optional);
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
  // Every head is moved, then checked: its version before the append is
  // the new one less the count. A refused one is rolled back with the
  // rest, so there is no need to spare it the move (and a per-row lookup
  // of its expectation in ON CONFLICT's condition grew with the square of
  // the aggregates). A missing head means a stored caller-chosen id
  // stopped them all.
  const held = `h.aggregate_id is not null and (i.expected = -1
    or (i.expected = -2 and h.aggregate_version > i.n)
    or h.aggregate_version - i.n = i.expected)`;
  // `placed` holds each head's values in one array per column, which the
  // events index: joining them to their heads cost the statement more
  // than anything else it does.
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
        ${movedHead("excluded.aggregate_version")}
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
        p.hash[e.aggregate], ${columns.map((c) => withDefault(c, `e.${c.column}`)).join(", ")}
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
