/**
 * What one worker of one projection reads and writes: the tables, the
 * projection's checkpoint key, its scope and the segments this worker owns.
 *
 * @module
 */

import type { ResolvedTables } from "../postgres/internal.ts";

/** One worker's share of one projection. */
export interface Target {
  tables: ResolvedTables;
  /** The projection's name: the checkpoint key. */
  name: string;
  /** The projection's fixed segment count. */
  segments: number;
  /** The segments this worker owns, ascending. */
  owned: readonly number[];
  /**
   * Group mode: this member's id and lease length. A batch then takes only
   * the segments whose lease it holds, checked under the row lock, and
   * its transaction may sit idle no longer than the lease.
   */
  member: { id: string; leaseMs: number } | undefined;
  aggregateTypes: readonly string[] | undefined;
  eventTypes: readonly string[] | undefined;
  /**
   * The error policy parks events and keeps each aggregate's order
   * (`park: "aggregate"`): a batch holds back the events of aggregates with
   * a parked event, so it needs to know whether there are any.
   */
  holdsParked: boolean;
}
