/**
 * Input checks shared by every adapter: bad input is refused before any SQL
 * runs, with an error that names the field and the fix.
 *
 * @module
 */

import type { AggregateAppend, Event, ExpectedVersion } from "./event.ts";
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
export function validateExpectedVersion(
  value: unknown,
  field = "expectedVersion",
): ExpectedVersion {
  if (value === "any" || value === "no_stream" || value === "stream_exists") return value;
  if (typeof value === "bigint" && value >= 0n) return value;
  throw new ValidationError(
    field,
    `"any", "no_stream", "stream_exists" or a bigint >= 0n (write 3n, not 3)`,
    show(value),
  );
}

/**
 * Checks the events of one append: at least one, all of one aggregate, and
 * every field of the right type. `path` names them in errors; `seenIds`
 * carries the ids of events checked before, when several appends go
 * together.
 *
 * @throws {ValidationError} naming the first offending field.
 */
export function validateEvents(
  events: unknown,
  path = "events",
  seenIds: Set<string> = new Set(),
): asserts events is Event[] {
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError(path, "a non-empty array of events", show(events));
  }
  const first = events[0] as Partial<Event> | undefined;
  events.forEach((candidate: unknown, i: number) => {
    const at = `${path}[${i}]`;
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
          "append each aggregate's events in its own call (or its own entry of appendMany)",
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

/** One entry of a validated {@linkcode AggregateAppend} list. */
export interface ValidAppend {
  events: readonly Event[];
  expected: ExpectedVersion;
}

/**
 * Checks the entries of an append to several aggregates: at least one, each
 * a valid append of its own, no aggregate in two entries and no event id
 * twice.
 *
 * @throws {ValidationError} naming the first offending field, such as
 * `appends[2].events[0].payload`.
 */
export function validateAppends(appends: unknown): ValidAppend[] {
  if (!Array.isArray(appends) || appends.length === 0) {
    throw new ValidationError(
      "appends",
      "a non-empty array of { events, expectedVersion? }",
      show(appends),
    );
  }
  const seenIds = new Set<string>();
  const seenAggregates = new Map<string, number>();
  return appends.map((candidate: unknown, k: number) => {
    const at = `appends[${k}]`;
    if (typeof candidate !== "object" || candidate === null) {
      throw new ValidationError(at, "an object { events, expectedVersion? }", show(candidate));
    }
    const { events, expectedVersion } = candidate as Partial<AggregateAppend>;
    validateEvents(events, `${at}.events`, seenIds);
    const { aggregateType, aggregateId } = events[0];
    // Type and id cannot contain NUL, so the pair joined by one is unique.
    const key = `${aggregateType}\0${aggregateId}`;
    const earlier = seenAggregates.get(key);
    if (earlier !== undefined) {
      throw new ValidationError(
        `${at}.events[0].aggregateId`,
        `an aggregate not already in appends[${earlier}]; put all of an aggregate's events in one entry`,
        `${aggregateType} ${show(aggregateId)}`,
      );
    }
    seenAggregates.set(key, k);
    // Only a missing option means "any": a null is a mistake, not a choice.
    const expected = validateExpectedVersion(
      expectedVersion === undefined ? "any" : expectedVersion,
      `${at}.expectedVersion`,
    );
    return { events, expected };
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
