/**
 * Turns stored rows into {@linkcode PersistedEvent}s.
 *
 * @module
 */

import type { JsonValue, PersistedEvent } from "../es/event.ts";
import { toBigInt } from "./db.ts";

/**
 * The columns of a full event, in the order {@linkcode decodeEvent} reads
 * them. Rows are read with postgres.js's `.values()`, so a client's column
 * name transforms (such as `postgres.camel`) cannot break decoding.
 */
export const EVENT_COLUMNS: readonly string[] = [
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

/** Decodes one row of {@linkcode EVENT_COLUMNS}. */
export function decodeEvent(row: readonly unknown[]): PersistedEvent {
  return {
    globalPosition: toBigInt(row[0]),
    transactionId: toBigInt(row[1]),
    aggregateType: row[2] as string,
    aggregateId: row[3] as string,
    aggregateVersion: toBigInt(row[4]),
    eventId: row[5] as string,
    eventType: row[6] as string,
    eventVersion: row[7] as number,
    payload: row[8] as Uint8Array,
    metadata: row[9] as JsonValue,
    traceId: row[10] as string | null,
    correlationId: row[11] as string | null,
    causationId: row[12] as string | null,
    createdAt: row[13] as Date,
  };
}
