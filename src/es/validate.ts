/**
 * Input checks shared by every adapter: bad input is refused before any SQL
 * runs, with an error that names the field and the fix.
 *
 * @module
 */

import type { Event, ExpectedVersion } from "./event.ts";
import { ValidationError } from "./errors.ts";
import { isUuid } from "./uuid.ts";

/** Postgres `integer` range, the column type of `event_version`. */
const INT32_MAX = 2_147_483_647;

/** Renders any value briefly for an error message. */
export function show(value: unknown): string {
  if (typeof value === "string") {
    return value.length > 60 ? `"${value.slice(0, 57)}..."` : JSON.stringify(value);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || value === undefined) return String(value);
  if (value instanceof Date) return `Date(${value.getTime()})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") return `a ${value.constructor?.name ?? "object"}`;
  return `${typeof value} ${String(value)}`;
}

/** Throws unless `value` is a non-empty string without NUL characters. */
export function requireName(field: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.includes("\0")) {
    throw new ValidationError(field, "a non-empty string without NUL characters", show(value));
  }
  return value;
}

function optionalText(field: string, value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "string" || value.includes("\0")) {
    throw new ValidationError(
      field,
      "a string without NUL characters, null or undefined",
      show(value),
    );
  }
}

/**
 * Checks an expected version.
 *
 * @throws {ValidationError} unless it is `"any"`, `"no_stream"`,
 * `"stream_exists"` or a `bigint` >= 0n.
 */
export function validateExpectedVersion(value: unknown): ExpectedVersion {
  if (value === "any" || value === "no_stream" || value === "stream_exists") return value;
  if (typeof value === "bigint" && value >= 0n) return value;
  throw new ValidationError(
    "expectedVersion",
    `"any", "no_stream", "stream_exists" or a bigint >= 0n (write 3n, not 3)`,
    show(value),
  );
}

/**
 * Checks the events of one append: at least one, all of one aggregate, and
 * every field of the right type.
 *
 * @throws {ValidationError} naming the first offending field.
 */
export function validateEvents(events: unknown): asserts events is Event[] {
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError("events", "a non-empty array of events", show(events));
  }
  const first = events[0] as Partial<Event> | undefined;
  const seenIds = new Set<string>();
  events.forEach((candidate: unknown, i: number) => {
    const at = `events[${i}]`;
    if (typeof candidate !== "object" || candidate === null) {
      throw new ValidationError(at, "an event object", show(candidate));
    }
    const event = candidate as Partial<Event>;
    requireName(`${at}.aggregateType`, event.aggregateType);
    requireName(`${at}.aggregateId`, event.aggregateId);
    requireName(`${at}.eventType`, event.eventType);
    if (event.aggregateType !== first?.aggregateType || event.aggregateId !== first?.aggregateId) {
      throw new ValidationError(
        `${at}.aggregateId`,
        `the aggregate of events[0] (${first?.aggregateType} ${show(first?.aggregateId)}); ` +
          "append each aggregate's events in its own call",
        `${event.aggregateType} ${show(event.aggregateId)}`,
      );
    }
    if (!(event.payload instanceof Uint8Array)) {
      throw new ValidationError(
        `${at}.payload`,
        "a Uint8Array (encode text with new TextEncoder().encode(...))",
        show(event.payload),
      );
    }
    if (event.eventId !== undefined) {
      if (!isUuid(event.eventId)) {
        throw new ValidationError(
          `${at}.eventId`,
          "a UUID such as 0190a6e0-...",
          show(event.eventId),
        );
      }
      const key = event.eventId.toLowerCase();
      if (seenIds.has(key)) {
        throw new ValidationError(
          `${at}.eventId`,
          "an id not used by another event of this append",
          show(event.eventId),
        );
      }
      seenIds.add(key);
    }
    if (
      event.eventVersion !== undefined &&
      !(Number.isInteger(event.eventVersion) && event.eventVersion >= 1 &&
        event.eventVersion <= INT32_MAX)
    ) {
      throw new ValidationError(
        `${at}.eventVersion`,
        "an integer from 1 to 2147483647",
        show(event.eventVersion),
      );
    }
    if (
      event.createdAt !== undefined &&
      !(event.createdAt instanceof Date && !isNaN(event.createdAt.getTime()))
    ) {
      throw new ValidationError(`${at}.createdAt`, "a valid Date", show(event.createdAt));
    }
    optionalText(`${at}.traceId`, event.traceId);
    optionalText(`${at}.correlationId`, event.correlationId);
    optionalText(`${at}.causationId`, event.causationId);
    if (event.metadata !== undefined) validateJson(`${at}.metadata`, event.metadata);
  });
}

/**
 * A NUL as JSON.stringify writes it: `\u0000` whose backslash is not itself
 * escaped (an odd run of backslashes). The text `\\u0000`, an escaped
 * backslash then "u0000", is no NUL and PostgreSQL stores it fine.
 */
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

function validateJson(field: string, value: unknown): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ValidationError(
      field,
      "a JSON value",
      `one JSON.stringify rejects (${(error as Error).message})`,
    );
  }
  if (text === undefined) throw new ValidationError(field, "a JSON value", show(value));
  if (JSON_NUL.test(text)) {
    throw new ValidationError(field, "JSON without NUL characters", "a \\u0000");
  }
}
