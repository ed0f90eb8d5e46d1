/**
 * The shapes of events before and after they are stored, and of what the
 * store hands back.
 *
 * @module
 */

/**
 * Any value that survives `JSON.stringify` and `JSON.parse` unchanged.
 *
 * @example
 * ```ts
 * import type { JsonValue } from "@getpup/pupsourcing";
 *
 * const metadata: JsonValue = { tenant: "acme", tags: ["import"], retries: 0 };
 * ```
 */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * An event to append. Only the aggregate, the type and the payload are
 * required; everything else has a sensible default.
 *
 * @example Build an event
 * ```ts
 * import type { Event } from "@getpup/pupsourcing";
 *
 * const event: Event = {
 *   aggregateType: "User",
 *   aggregateId: "user-1",
 *   eventType: "UserRegistered",
 *   payload: new TextEncoder().encode(JSON.stringify({ email: "a@b.c" })),
 * };
 * ```
 */
export interface Event {
  /** The kind of aggregate, such as `"User"`. */
  aggregateType: string;
  /** The aggregate's id: a UUID or any natural key such as an email. */
  aggregateId: string;
  /** What happened, such as `"UserRegistered"`. */
  eventType: string;
  /** The serialized event, in whatever format the application chooses. */
  payload: Uint8Array;
  /** A UUID; defaults to a new UUIDv7. Reuse it to make a retry idempotent. */
  eventId?: string;
  /** The schema version of the payload; defaults to 1. */
  eventVersion?: number;
  /** Free-form JSON stored next to the event. */
  metadata?: JsonValue;
  /** The trace this event was produced in. */
  traceId?: string | null;
  /** The id shared by every message of one business flow. */
  correlationId?: string | null;
  /** The id of the message that caused this event. */
  causationId?: string | null;
  /** When it happened; defaults to the database's `now()` at append. */
  createdAt?: Date;
}

/**
 * An event as stored: the input fields with every default filled in, plus the
 * positions the store assigned.
 *
 * @example Decode a stored payload
 * ```ts
 * import type { PersistedEvent } from "@getpup/pupsourcing";
 *
 * function describe(event: PersistedEvent): string {
 *   const body = JSON.parse(new TextDecoder().decode(event.payload));
 *   return `${event.eventType} v${event.aggregateVersion}: ${JSON.stringify(body)}`;
 * }
 * ```
 */
export interface PersistedEvent {
  /** Position in the global log; unique, increasing, with possible gaps. */
  globalPosition: bigint;
  /**
   * The global log's first order key (`xid8`): the writing transaction's
   * id, or, when the aggregate's previous event was filed under a newer
   * transaction's id, that id, so an aggregate's events never go out of
   * version order in the log.
   */
  transactionId: bigint;
  /** The kind of aggregate. */
  aggregateType: string;
  /** The aggregate's id. */
  aggregateId: string;
  /** The aggregate's version after this event: 1 for its first event. */
  aggregateVersion: bigint;
  /** The event's UUID. */
  eventId: string;
  /** What happened. */
  eventType: string;
  /** The schema version of the payload. */
  eventVersion: number;
  /** The serialized event. */
  payload: Uint8Array;
  /** Free-form JSON stored with the event, `null` when none was given. */
  metadata: JsonValue;
  /** The trace id, or `null`. */
  traceId: string | null;
  /** The correlation id, or `null`. */
  correlationId: string | null;
  /** The causation id, or `null`. */
  causationId: string | null;
  /** When it happened. */
  createdAt: Date;
}

/**
 * What the caller believes the aggregate's version to be before an append:
 *
 * - `"any"`: no check; never conflicts.
 * - `"no_stream"`: the aggregate must have no events yet.
 * - `"stream_exists"`: the aggregate must have at least one event.
 * - a `bigint`: the aggregate's version must be exactly this (`0n` means it
 *   has no events, like `"no_stream"`).
 *
 * @example Append only if nobody wrote since version 3 was read
 * ```ts
 * import type { ExpectedVersion } from "@getpup/pupsourcing";
 *
 * const expected: ExpectedVersion = 3n;
 * ```
 */
export type ExpectedVersion = "any" | "no_stream" | "stream_exists" | bigint;

/**
 * One aggregate's share of an append to several aggregates at once
 * (`PostgresStore.appendMany`): its events, and what its version must be.
 *
 * @example Open two accounts in one statement
 * ```ts
 * import type { AggregateAppend } from "@getpup/pupsourcing";
 *
 * const opened = (id: string): AggregateAppend => ({
 *   events: [{
 *     aggregateType: "Account",
 *     aggregateId: id,
 *     eventType: "AccountOpened",
 *     payload: new TextEncoder().encode("{}"),
 *   }],
 *   expectedVersion: "no_stream",
 * });
 * const appends = [opened("acc-1"), opened("acc-2")];
 * ```
 */
export interface AggregateAppend {
  /** The events, all of one aggregate, in the order they happened. */
  events: readonly Event[];
  /** What the aggregate's version must be; default `"any"`. */
  expectedVersion?: ExpectedVersion;
}

/**
 * The outcome of an append.
 *
 * @example Read the versions an append produced
 * ```ts
 * import type { AppendResult } from "@getpup/pupsourcing";
 *
 * function summary(result: AppendResult): string {
 *   return `versions ${result.fromVersion + 1n}..${result.toVersion}`;
 * }
 * ```
 */
export interface AppendResult {
  /** The stored events, in version order. */
  events: PersistedEvent[];
  /** Their global positions, in the same order. */
  globalPositions: bigint[];
  /** The aggregate's version before the append. */
  fromVersion: bigint;
  /** The aggregate's version after the append. */
  toVersion: bigint;
}

/**
 * The events of one aggregate, in version order.
 *
 * @example Rebuild state from a stream
 * ```ts
 * import type { Stream } from "@getpup/pupsourcing";
 *
 * function count(stream: Stream): number {
 *   return stream.events.length;
 * }
 * ```
 */
export interface Stream {
  /** The kind of aggregate that was read. */
  aggregateType: string;
  /** The aggregate's id. */
  aggregateId: string;
  /** The events read, in version order. */
  events: PersistedEvent[];
  /** The version of the last event read, `0n` when none was. */
  version: bigint;
}

/**
 * A place in the global log: just after the event with this transaction id
 * and global position. The log is ordered by the pair, never by the
 * position alone.
 *
 * @example Start from the beginning, then resume after an event
 * ```ts
 * import type { Cursor, PersistedEvent } from "@getpup/pupsourcing";
 *
 * const start: Cursor = { transactionId: 0n, globalPosition: 0n };
 * const after = (e: PersistedEvent): Cursor => ({
 *   transactionId: e.transactionId,
 *   globalPosition: e.globalPosition,
 * });
 * ```
 */
export interface Cursor {
  /** The transaction id of the last event consumed. */
  transactionId: bigint;
  /** The global position of the last event consumed. */
  globalPosition: bigint;
}

/**
 * The cursor before the first event of the log.
 *
 * @example
 * ```ts
 * import { START } from "@getpup/pupsourcing";
 *
 * console.log(START.globalPosition); // 0n
 * ```
 */
export const START: Readonly<Cursor> = Object.freeze({
  transactionId: 0n,
  globalPosition: 0n,
});
