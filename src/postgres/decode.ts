/**
 * Turns stored rows into {@linkcode PersistedEvent}s.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { JsonValue, PersistedEvent } from "../es/event.ts";
import { type Db, toBigInt } from "./db.ts";
import { EVENT_TABLE_COLUMNS } from "./schema.ts";

/** The columns an event is read from: every column but the segment hash, in table order. */
const READ = EVENT_TABLE_COLUMNS.filter((c) => c.name !== "aggregate_id_hash").map((c) => c.name);

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
export const EVENT_COLUMNS: string = READ.map((name) =>
  name === "payload" ? "encode(payload, 'base64')" : name === "metadata" ? "metadata::text" : name
).join(", ");

/** How many columns {@linkcode EVENT_COLUMNS} has. */
export const EVENT_COLUMN_COUNT: number = READ.length;

/** {@linkcode EVENT_COLUMNS} as a fragment of a query on `db`. */
export function eventColumns(db: Db) {
  return db.unsafe(EVENT_COLUMNS);
}

/** Where each column sits in a row of {@linkcode EVENT_COLUMNS}. */
const AT = Object.fromEntries(READ.map((name, i) => [name, i])) as Record<string, number>;
const POSITION = AT.global_position;
const TRANSACTION = AT.transaction_id;
const AGGREGATE_TYPE = AT.aggregate_type;
const AGGREGATE_ID = AT.aggregate_id;
const VERSION = AT.aggregate_version;
const EVENT_ID = AT.event_id;
const EVENT_TYPE = AT.event_type;
const EVENT_VERSION = AT.event_version;
const PAYLOAD = AT.payload;
const METADATA = AT.metadata;
const TRACE = AT.trace_id;
const CORRELATION = AT.correlation_id;
const CAUSATION = AT.causation_id;
const CREATED = AT.created_at;

/** Decodes one row of {@linkcode EVENT_COLUMNS}. */
export function decodeEvent(row: readonly unknown[]): PersistedEvent {
  const metadata = row[METADATA];
  return {
    globalPosition: toBigInt(row[POSITION]),
    transactionId: toBigInt(row[TRANSACTION]),
    aggregateType: row[AGGREGATE_TYPE] as string,
    aggregateId: row[AGGREGATE_ID] as string,
    aggregateVersion: toBigInt(row[VERSION]),
    eventId: row[EVENT_ID] as string,
    eventType: row[EVENT_TYPE] as string,
    eventVersion: row[EVENT_VERSION] as number,
    payload: fromBase64(row[PAYLOAD] as string),
    metadata: metadata === null ? null : JSON.parse(metadata as string) as JsonValue,
    traceId: row[TRACE] as string | null,
    correlationId: row[CORRELATION] as string | null,
    causationId: row[CAUSATION] as string | null,
    createdAt: row[CREATED] as Date,
  };
}

/**
 * Decodes base64 (with PostgreSQL's line breaks) into a plain `Uint8Array`:
 * a Node `Buffer`'s `slice` shares memory where a `Uint8Array`'s copies,
 * so the bytes are handed out as a `Uint8Array` view of the same memory.
 */
export function fromBase64(text: string): Uint8Array {
  const bytes = Buffer.from(text, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
