/**
 * Turns stored rows into {@linkcode PersistedEvent}s.
 *
 * @module
 */

import type { JsonValue, PersistedEvent } from "../es/event.ts";
import { type Db, toBigInt } from "./db.ts";

/**
 * The select list of a full event, in the order {@linkcode decodeEvent}
 * reads it. Rows are read with postgres.js's `.values()` and this list is
 * plain SQL text, so a client's name transforms cannot break decoding; the
 * metadata comes as text because `postgres.camel` would rename its keys.
 */
export const EVENT_COLUMNS =
  "global_position, transaction_id, aggregate_type, aggregate_id, aggregate_version, event_id, " +
  "event_type, event_version, payload, metadata::text, trace_id, correlation_id, causation_id, " +
  "created_at";

/** {@linkcode EVENT_COLUMNS} as a fragment of a query on `db`. */
export function eventColumns(db: Db) {
  return db.unsafe(EVENT_COLUMNS);
}

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
    payload: plainBytes(row[8] as Uint8Array),
    metadata: row[9] === null ? null : JSON.parse(row[9] as string) as JsonValue,
    traceId: row[10] as string | null,
    correlationId: row[11] as string | null,
    causationId: row[12] as string | null,
    createdAt: row[13] as Date,
  };
}

/**
 * postgres.js hands out a Node `Buffer`, whose `slice` shares memory where
 * a `Uint8Array`'s copies: the same bytes, viewed as a plain `Uint8Array`.
 */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
