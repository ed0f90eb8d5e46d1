/**
 * What one worker of one projection reads and writes: the tables, the
 * projection's checkpoint key, its scope and the segments this worker owns.
 *
 * @module
 */

import type { Db } from "../postgres/db.ts";
import { arrayLiteral } from "../postgres/db.ts";
import type { ResolvedTables } from "../postgres/tables.ts";

/** One worker's share of one projection. */
export interface Target {
  tables: ResolvedTables;
  /** The projection's name: the checkpoint key. */
  name: string;
  /** The projection's fixed segment count. */
  segments: number;
  /** The segments this worker owns, ascending. */
  owned: readonly number[];
  aggregateTypes: readonly string[] | undefined;
  eventTypes: readonly string[] | undefined;
}

/**
 * The scope filters, as `and ...` fragments on the events table. The
 * segment filter uses the stored `aggregate_id_hash`, so only the worker's
 * share ever leaves the database.
 */
export function scopeFilter(db: Db, target: Target, segments: readonly number[]) {
  const { aggregateTypes, eventTypes } = target;
  const types = aggregateTypes
    ? db`and aggregate_type = any(${arrayLiteral(aggregateTypes)}::text[])`
    : db``;
  const events = eventTypes ? db`and event_type = any(${arrayLiteral(eventTypes)}::text[])` : db``;
  // With one segment every event is the worker's: no filter to evaluate.
  const owned = target.segments === 1
    ? db``
    : db`and aggregate_id_hash % ${target.segments} = any(${int4Array(segments)}::int4[])`;
  return db`${types} ${events} ${owned}`;
}

/** Integers as an array literal (`${int4Array(ids)}::int4[]`). */
export function int4Array(values: readonly number[]): string {
  return arrayLiteral(values.map(String));
}
