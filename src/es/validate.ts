/**
 * Input checks shared by every adapter: bad input is refused before any SQL
 * runs, with an error that names the field and the fix. The ranges are
 * PostgreSQL's: a value it would refuse is refused here first, so a
 * caller's transaction never aborts on bad input.
 *
 * @module
 */

import {
  type AggregateAppend,
  type Cursor,
  type Event,
  type ExpectedVersion,
  type JsonValue,
  START,
} from "./event.ts";
import { ValidationError } from "./errors.ts";
import { MAX_APPEND_PAYLOAD_BYTES, MAX_EVENT_PAYLOAD_BYTES } from "./limits.ts";
import { checkOptions } from "./options.ts";
import { show } from "./show.ts";
import { isUuid } from "./uuid.ts";

export { show };

/** PostgreSQL `integer` range, the column type of `event_version`. */
const INT32_MAX = 2_147_483_647;
/** PostgreSQL `bigint` range: versions and global positions. */
const BIGINT_MAX = 2n ** 63n - 1n;
/** PostgreSQL `xid8` range (unsigned): transaction ids. */
const XID8_MAX = 2n ** 64n - 1n;

/**
 * The `createdAt` range the store round-trips: it sends ISO 8601 text,
 * whose four-digit years PostgreSQL reads (the six-digit years JavaScript
 * writes past 9999 it refuses), and postgres.js reads a `timestamptz`
 * with `new Date(text)`, which takes years 1 to 99 for 1901 to 1999.
 */
const MIN_CREATED_AT = Date.parse("0100-01-01T00:00:00.000Z");
const MAX_CREATED_AT = Date.parse("9999-12-31T23:59:59.999Z");

/** What every stored string must be, for messages. */
const WELL_FORMED = 'without NUL characters or unpaired surrogates such as "\\ud800"';

/**
 * Without NUL characters or unpaired surrogates. An unpaired surrogate:
 * postgres.js encodes it as U+FFFD, so two different ids (`"a\uD800"`,
 * `"a\uDBFF"`) would be stored as one. `isWellFormed` (ES2024, in every
 * runtime we support, not yet in the npm build's type library) is native,
 * where a `\p{Surrogate}` pattern cost every string of every event a
 * regular expression.
 */
function wellFormed(text: string): boolean {
  return !text.includes("\0") && (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Throws unless `value` is a bigint from 0n to `max`. The one range check
 * of versions, positions and transaction ids; `others` names the values
 * accepted besides, for the message.
 */
function requireBigint(field: string, value: unknown, max: bigint, others = ""): bigint {
  if (typeof value === "bigint" && value >= 0n && value <= max) return value;
  throw new ValidationError(
    field,
    `${others}a bigint from 0n to ${max}n (write 3n, not 3)`,
    show(value),
  );
}

/**
 * Throws unless `value` is a non-empty string without NUL characters or
 * unpaired surrogates: every name and identifier the store keeps, as a
 * read or a lookup takes it.
 */
export function requireName(field: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || !wellFormed(value)) {
    throw new ValidationError(field, `a non-empty string ${WELL_FORMED}`, show(value));
  }
  return value;
}

/**
 * {@linkcode requireName} for a name about to be written: nor may it be
 * blank (`"  "`), as surely a mistake as an empty one and as hard to tell
 * apart in a log or a table. Reads take what was stored before this
 * check, blank or not.
 */
export function requireNewName(field: string, value: unknown): string {
  if (typeof value === "string" && value.length > 0 && value.trim().length === 0) {
    throw new ValidationError(field, `a non-blank string ${WELL_FORMED}`, show(value));
  }
  return requireName(field, value);
}

/** Names a field of the event being checked (`events[3].traceId`), for an error. */
type EventField = (name: string) => string;

function optionalText(at: EventField, name: string, value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "string" || !wellFormed(value)) {
    throw new ValidationError(at(name), `a string ${WELL_FORMED}, null or undefined`, show(value));
  }
}

/**
 * Checks the `expectedVersion` of an options object (`append`'s, or an
 * `appendMany` entry's). Only a missing key means `"any"`: a present
 * `undefined` or `null` is a mistake that would silently turn the
 * concurrency check off, so it is refused.
 *
 * @throws {ValidationError} unless it is missing, `"any"`, `"no_stream"`,
 * `"stream_exists"` or a `bigint` in PostgreSQL's `bigint` range.
 */
function expectedVersionOf(
  options: { expectedVersion?: unknown },
  field: string,
): ExpectedVersion {
  if (!("expectedVersion" in options)) return "any";
  const value = options.expectedVersion;
  if (value === "any" || value === "no_stream" || value === "stream_exists") return value;
  const others = `"any", "no_stream", "stream_exists" or `;
  if (value === undefined) {
    throw new ValidationError(field, `${others}a bigint; omit the option for "any"`, "undefined");
  }
  return requireBigint(field, value, BIGINT_MAX, others);
}

/** The validated options of an append to one aggregate. */
export interface ValidAppendOptions {
  expected: ExpectedVersion;
  signal: AbortSignal | undefined;
}

/**
 * Checks the options of an append to one aggregate.
 *
 * @throws {ValidationError} on options that are not an object, an unknown
 * key, an expected version that is not one (see
 * {@linkcode ExpectedVersion}), or a signal that is no `AbortSignal`.
 */
export function validateAppendOptions(options: unknown): ValidAppendOptions {
  const checked = checkOptions<{ expectedVersion?: unknown; signal?: unknown }>(
    "options",
    options as object | undefined,
    ["expectedVersion", "signal"],
  );
  const { signal } = checked;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ValidationError("options.signal", "an AbortSignal, or no signal", show(signal));
  }
  return { expected: expectedVersionOf(checked, "expectedVersion"), signal };
}

/** The validated options of a read of one aggregate's stream. */
export interface ValidStreamOptions {
  /** The first version to read, if bounded. */
  fromVersion: bigint | undefined;
  /** The last version to read, if bounded. */
  toVersion: bigint | undefined;
}

/**
 * Checks the options of a read of one aggregate's stream.
 *
 * @throws {ValidationError} on options that are not an object, an unknown
 * key, or a bound outside PostgreSQL's `bigint` range.
 */
export function validateStreamOptions(options: unknown): ValidStreamOptions {
  const { fromVersion, toVersion } = checkOptions<{ fromVersion?: unknown; toVersion?: unknown }>(
    "options",
    options as object | undefined,
    ["fromVersion", "toVersion"],
  );
  return {
    fromVersion: optionalVersion("fromVersion", fromVersion),
    toVersion: optionalVersion("toVersion", toVersion),
  };
}

function optionalVersion(field: string, value: unknown): bigint | undefined {
  return value === undefined ? undefined : requireBigint(field, value, BIGINT_MAX, "undefined or ");
}

/** The validated options of a read of the global log. */
export interface ValidReadOptions {
  /** Read after this cursor. */
  after: Cursor;
  /** At most this many events. */
  limit: number;
  /** Only these aggregate types, if given. */
  aggregateTypes: string[] | undefined;
  /** Only these event types, if given. */
  eventTypes: string[] | undefined;
  /** Only these segments, if given. */
  segments: { count: number; ids: number[] } | undefined;
}

const READ_OPTIONS = ["after", "limit", "aggregateTypes", "eventTypes", "segments"] as const;

/**
 * Checks the options of a read of the global log and fills in the
 * defaults: from the start, 1000 events.
 *
 * @throws {ValidationError} on options that are not an object, an unknown
 * key, or a bad value (a cursor outside PostgreSQL's ranges, an empty
 * filter, a segment out of range).
 */
export function validateReadOptions(options: unknown): ValidReadOptions {
  const checked = checkOptions<Partial<Record<(typeof READ_OPTIONS)[number], unknown>>>(
    "options",
    options as object | undefined,
    READ_OPTIONS,
  );
  const limit = checked.limit ?? 1000;
  if (!Number.isSafeInteger(limit) || (limit as number) < 1) {
    throw new ValidationError("limit", "a positive integer", show(limit));
  }
  return {
    after: validateCursor(checked.after === undefined ? START : checked.after),
    limit: limit as number,
    aggregateTypes: nameList("aggregateTypes", checked.aggregateTypes),
    eventTypes: nameList("eventTypes", checked.eventTypes),
    segments: validateSegments(checked.segments),
  };
}

/**
 * Checks a cursor: a transaction id in PostgreSQL's `xid8` range and a
 * global position in its `bigint` range. Any object with the two fields
 * will do, a stored event among them.
 *
 * @throws {ValidationError} naming `field.transactionId` or
 * `field.globalPosition`.
 */
export function validateCursor(cursor: unknown, field = "after"): Cursor {
  if (typeof cursor !== "object" || cursor === null) {
    throw new ValidationError(
      field,
      "a cursor { transactionId, globalPosition } or undefined (for the start)",
      show(cursor),
    );
  }
  const { transactionId, globalPosition } = cursor as Partial<Cursor>;
  return {
    transactionId: requireBigint(`${field}.transactionId`, transactionId, XID8_MAX),
    globalPosition: requireBigint(`${field}.globalPosition`, globalPosition, BIGINT_MAX),
  };
}

function nameList(field: string, names: unknown): string[] | undefined {
  if (names === undefined) return undefined;
  if (!Array.isArray(names) || names.length === 0) {
    throw new ValidationError(
      field,
      "a non-empty array of names (omit it to read all)",
      show(names),
    );
  }
  return names.map((name, i) => requireName(`${field}[${i}]`, name));
}

function validateSegments(segments: unknown): { count: number; ids: number[] } | undefined {
  if (segments === undefined) return undefined;
  const { count, ids } = checkOptions<{ count?: unknown; ids?: unknown }>(
    "segments",
    segments as object,
    ["count", "ids"],
  );
  if (!Number.isSafeInteger(count) || (count as number) < 1) {
    throw new ValidationError("segments.count", "a positive integer", show(count));
  }
  if (
    !Array.isArray(ids) || ids.length === 0 ||
    ids.some((id) => !Number.isInteger(id) || id < 0 || id >= (count as number))
  ) {
    throw new ValidationError(
      "segments.ids",
      `a non-empty array of integers in 0..${(count as number) - 1}`,
      show(ids),
    );
  }
  return { count: count as number, ids: [...ids] };
}

/** The fields of an {@linkcode Event}: any other is refused as a misspelling. */
const EVENT_KEYS: ReadonlySet<keyof Event> = new Set<keyof Event>([
  "aggregateType",
  "aggregateId",
  "eventType",
  "payload",
  "eventId",
  "eventVersion",
  "metadata",
  "traceId",
  "correlationId",
  "causationId",
  "createdAt",
]);

/**
 * Checks the events of one append: at least one, all of one aggregate, and
 * every field of the right type. `path` names them in errors; `tally`
 * carries the ids and payload bytes of events checked before, when several
 * appends go together.
 *
 * @throws {ValidationError} naming the first offending field.
 */
export function validateEvents(
  events: unknown,
  path = "events",
  tally: AppendTally = { ids: new Set(), payloadBytes: 0 },
): asserts events is Event[] {
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError(path, "a non-empty array of events", show(events));
  }
  const first = events[0] as Partial<Event> | undefined;
  // The events of an append share their aggregate and mostly their type:
  // a string equal to one checked already is not checked again.
  let checkedType: unknown;
  for (let i = 0; i < events.length; i++) {
    const candidate: unknown = events[i];
    // An event's field names are made only for an error: making them for
    // every field of every event cost more than checking the fields.
    const at = (name?: string) => name === undefined ? `${path}[${i}]` : `${path}[${i}].${name}`;
    if (typeof candidate !== "object" || candidate === null) {
      throw new ValidationError(at(), "an event object", show(candidate));
    }
    const event = candidate as Partial<Event>;
    // A misspelt field (`aggregateID`, `meta`) would be dropped without a word.
    for (const key in event) {
      if (!EVENT_KEYS.has(key as keyof Event)) checkOptions(at(), event, [...EVENT_KEYS]);
    }
    if (i === 0 || event.aggregateType !== first?.aggregateType) {
      requireNewName(at("aggregateType"), event.aggregateType);
    }
    if (i === 0 || event.aggregateId !== first?.aggregateId) {
      requireNewName(at("aggregateId"), event.aggregateId);
    }
    if (i === 0 || event.eventType !== checkedType) {
      checkedType = requireNewName(at("eventType"), event.eventType);
    }
    if (event.aggregateType !== first?.aggregateType || event.aggregateId !== first?.aggregateId) {
      throw new ValidationError(
        at("aggregateId"),
        `the aggregate of events[0] (${first?.aggregateType} ${show(first?.aggregateId)}); ` +
          "append each aggregate's events in its own call (or its own entry of appendMany)",
        `${event.aggregateType} ${show(event.aggregateId)}`,
      );
    }
    if (!(event.payload instanceof Uint8Array)) {
      throw new ValidationError(
        at("payload"),
        "a Uint8Array (encode text with new TextEncoder().encode(...))",
        show(event.payload),
      );
    }
    countPayload(at, event.payload.byteLength, tally);
    if (event.eventId !== undefined) {
      if (!isUuid(event.eventId)) {
        throw new ValidationError(
          at("eventId"),
          "a UUID such as 0190a6e0-...",
          show(event.eventId),
        );
      }
      const key = event.eventId.toLowerCase();
      if (tally.ids.has(key)) {
        throw new ValidationError(
          at("eventId"),
          "an id not used by another event of this append",
          show(event.eventId),
        );
      }
      tally.ids.add(key);
    }
    if (
      event.eventVersion !== undefined &&
      !(Number.isInteger(event.eventVersion) && event.eventVersion >= 1 &&
        event.eventVersion <= INT32_MAX)
    ) {
      throw new ValidationError(
        at("eventVersion"),
        "an integer from 1 to 2147483647",
        show(event.eventVersion),
      );
    }
    if (event.createdAt !== undefined) validateCreatedAt(at, event.createdAt);
    optionalText(at, "traceId", event.traceId);
    optionalText(at, "correlationId", event.correlationId);
    optionalText(at, "causationId", event.causationId);
    if (event.metadata !== undefined) validateJson(at, event.metadata);
  }
}

/**
 * What the events checked so far in one append have used, when several
 * appends go together: their event ids and payload bytes.
 */
interface AppendTally {
  ids: Set<string>;
  payloadBytes: number;
}

/** Refuses a payload above its own limit, or one that takes its append above the total's. */
function countPayload(at: EventField, bytes: number, tally: AppendTally): void {
  if (bytes > MAX_EVENT_PAYLOAD_BYTES) {
    throw new ValidationError(
      at("payload"),
      `at most ${MAX_EVENT_PAYLOAD_BYTES} bytes (MAX_EVENT_PAYLOAD_BYTES); ` +
        "keep large files outside the event and store a reference",
      `${bytes} bytes`,
    );
  }
  tally.payloadBytes += bytes;
  if (tally.payloadBytes > MAX_APPEND_PAYLOAD_BYTES) {
    throw new ValidationError(
      at("payload"),
      `payloads of one append totalling at most ${MAX_APPEND_PAYLOAD_BYTES} bytes ` +
        "(MAX_APPEND_PAYLOAD_BYTES); split the events over several appends",
      `${tally.payloadBytes} bytes up to this event`,
    );
  }
}

function validateCreatedAt(at: EventField, value: unknown): void {
  const time = value instanceof Date ? value.getTime() : NaN;
  if (time >= MIN_CREATED_AT && time <= MAX_CREATED_AT) return;
  throw new ValidationError(
    at("createdAt"),
    "a valid Date from year 100 to year 9999 (UTC), the range the store writes and reads back",
    show(value),
  );
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
  const tally: AppendTally = { ids: new Set(), payloadBytes: 0 };
  const seenAggregates = new Map<string, number>();
  return appends.map((candidate: unknown, k: number) => {
    const at = `appends[${k}]`;
    if (typeof candidate !== "object" || candidate === null) {
      throw new ValidationError(at, "an object { events, expectedVersion? }", show(candidate));
    }
    const entry = checkOptions<Partial<AggregateAppend>>(at, candidate, [
      "events",
      "expectedVersion",
    ]);
    const { events } = entry;
    validateEvents(events, `${at}.events`, tally);
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
    return { events, expected: expectedVersionOf(entry, `${at}.expectedVersion`) };
  });
}

/**
 * A NUL or an unpaired surrogate as JSON.stringify writes them: `\u0000`
 * or `\ud800` whose backslash is not itself escaped (an odd run of
 * backslashes). PostgreSQL's `jsonb` refuses both. The text `\\u0000`, an
 * escaped backslash then "u0000", is neither, and PostgreSQL stores it
 * fine; a surrogate pair JSON.stringify writes as it is, unescaped.
 */
const JSON_REFUSED = /(?<!\\)(?:\\\\)*\\u(0000|d[89a-f][0-9a-f]{2})/;

function validateJson(at: EventField, value: unknown): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ValidationError(
      at("metadata"),
      "a JSON value",
      `one JSON.stringify rejects (${(error as Error).message})`,
    );
  }
  if (text === undefined) throw new ValidationError(at("metadata"), "a JSON value", show(value));
  // Without a `\u` in it, no text is refused: the pattern only runs on the rare one with.
  const refused = text.includes("\\u") ? JSON_REFUSED.exec(text)?.[1] : undefined;
  if (refused !== undefined) {
    throw new ValidationError(
      at("metadata"),
      "JSON without NUL characters or unpaired surrogates (PostgreSQL's jsonb refuses both)",
      `a \\u${refused}`,
    );
  }
  if (typeof value === "object" && value !== null) validatedJson.set(value, text);
}

/**
 * The JSON text of each metadata object as validated, so an append
 * encodes it once: JSON.stringify was a tenth of the client CPU of an
 * append with metadata, and it ran twice. Held weakly, for the objects'
 * lifetime.
 */
const validatedJson = new WeakMap<object, string>();

/**
 * `value` as JSON text: the text the latest {@linkcode validateEvents} of
 * this object made, or a new one. An append writes a text that was
 * checked: a caller that changes the object while its append waits in a
 * queue gets the text of the object's latest validation (its own, or a
 * later append's of the same object).
 */
export function jsonText(value: JsonValue): string {
  return (typeof value === "object" && value !== null && validatedJson.get(value)) ||
    JSON.stringify(value);
}
