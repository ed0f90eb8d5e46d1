/**
 * Turns stored rows into {@linkcode PersistedEvent}s.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { JsonValue, PersistedEvent } from "../es/event.ts";
import { type Db, toBigInt } from "./db.ts";

/**
 * The select list of a full event, in the order {@linkcode decodeEvent}
 * reads it. Rows are read with postgres.js's `.values()` and this list is
 * plain SQL text, so a client's name transforms cannot break decoding; the
 * metadata comes as text because `postgres.camel` would rename its keys.
 *
 * The payload comes as base64 text: postgres.js reads a `bytea` as hex
 * text (two characters a byte) and decodes it with `Buffer.from(hex,
 * "hex")`, which under Deno is plain JavaScript; base64 is a third shorter
 * on the wire and decodes natively everywhere: the same read of the global
 * log ran about a third faster (bench W4b).
 */
export const EVENT_COLUMNS =
  "global_position, transaction_id, aggregate_type, aggregate_id, aggregate_version, event_id, " +
  "event_type, event_version, encode(payload, 'base64'), metadata::text, trace_id, correlation_id, causation_id, " +
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
    payload: fromBase64(row[8] as string),
    metadata: row[9] === null ? null : JSON.parse(row[9] as string) as JsonValue,
    traceId: row[10] as string | null,
    correlationId: row[11] as string | null,
    causationId: row[12] as string | null,
    createdAt: row[13] as Date,
  };
}

/**
 * Decodes base64 (with PostgreSQL's line breaks) into a plain `Uint8Array`:
 * a Node `Buffer`'s `slice` shares memory where a `Uint8Array`'s copies,
 * so the bytes are handed out as a `Uint8Array` view of the same memory.
 */
function fromBase64(text: string): Uint8Array {
  const bytes = Buffer.from(text, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
