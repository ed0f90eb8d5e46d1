/**
 * Codecs: typed events (`{ type, data, metadata? }`) to and from the
 * stored form (event type, payload bytes, event version), with upcasters
 * that bring payloads written by older code to the current shape on read.
 *
 * @module
 */

import type { JsonValue, PersistedEvent } from "./event.ts";
import { PupsourcingError, ValidationError } from "./errors.ts";
import { fromJsonBytes, toJsonBytes } from "./json.ts";
import { checkOptions } from "./options.ts";
import { show } from "./show.ts";

/**
 * A typed event: its type, its data, and optional metadata.
 *
 * @example A union of an account's events
 * ```ts
 * import type { TypedEvent } from "@getpup/pupsourcing";
 *
 * type AccountEvent =
 *   | TypedEvent<"Deposited", { amount: number }>
 *   | TypedEvent<"Withdrawn", { amount: number }>;
 * ```
 */
export interface TypedEvent<Type extends string = string, Data = unknown> {
  /** What happened: the stored event type. */
  type: Type;
  /** The event's data, serialized as the payload. */
  data: Data;
  /** Free-form JSON stored next to the event. */
  metadata?: JsonValue;
}

/**
 * The stored form of a typed event: what goes into an `Event`.
 *
 * @example
 * ```ts
 * import type { EncodedEvent } from "@getpup/pupsourcing";
 *
 * const encoded: EncodedEvent = {
 *   eventType: "Deposited",
 *   eventVersion: 1,
 *   payload: new TextEncoder().encode('{"amount":5}'),
 * };
 * ```
 */
export interface EncodedEvent {
  /** The event type. */
  eventType: string;
  /** The schema version the payload is written in. */
  eventVersion: number;
  /** The serialized data. */
  payload: Uint8Array;
  /** The metadata, when the event has some. */
  metadata?: JsonValue;
}

/**
 * What a codec reads: the stored fields of an event.
 *
 * @example
 * ```ts
 * import type { StoredForm } from "@getpup/pupsourcing";
 *
 * const stored: StoredForm = {
 *   eventId: "0190a6e0-0000-7000-8000-000000000000",
 *   eventType: "Deposited",
 *   eventVersion: 1,
 *   payload: new TextEncoder().encode('{"amount":5}'),
 *   metadata: null,
 * };
 * ```
 */
export type StoredForm = Pick<
  PersistedEvent,
  "eventId" | "eventType" | "eventVersion" | "payload" | "metadata"
>;

/**
 * Turns typed events of the union `E` into their stored form and back.
 *
 * @example
 * ```ts
 * import { type EventCodec, jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Ping = TypedEvent<"Ping", { at: number }>;
 * const codec: EventCodec<Ping> = jsonCodec<Ping>({ events: { Ping: {} } });
 * console.log(codec.eventTypes); // ["Ping"]
 * ```
 */
export interface EventCodec<E extends TypedEvent> {
  /** Every event type the codec knows. */
  readonly eventTypes: readonly E["type"][];
  /**
   * The stored form of `event`, in the current version.
   *
   * @throws {UnknownEventTypeError} for a type the codec does not know.
   */
  encode(event: E): EncodedEvent;
  /**
   * The typed event of a stored one, upcast to the current version.
   *
   * @throws {UnknownEventTypeError} for a type the codec does not know.
   * @throws {EventDecodeError} when the payload does not decode.
   */
  decode(event: StoredForm): E;
}

/**
 * An upcaster: the data of one stored version, as the next version has it.
 *
 * @example
 * ```ts
 * import type { Upcaster } from "@getpup/pupsourcing";
 *
 * const addCurrency: Upcaster = (data) => ({ ...(data as object), currency: "EUR" });
 * ```
 */
// deno-lint-ignore no-explicit-any -- an upcaster reads data of an older, untyped shape
export type Upcaster = (data: any) => unknown;

/**
 * How one event type is stored: its current version (default 1) and the
 * upcasters from each older stored version to the next one.
 *
 * @example Version 3, readable from versions 1 and 2
 * ```ts
 * import type { EventSchema } from "@getpup/pupsourcing";
 *
 * const schema: EventSchema = {
 *   version: 3,
 *   upcast: {
 *     1: (data) => ({ ...data, currency: "EUR" }),
 *     2: (data) => ({ ...data, cents: data.amount * 100 }),
 *   },
 * };
 * ```
 */
export interface EventSchema {
  /** The version the encoder writes; default 1. */
  version?: number;
  /** Keyed by stored version `v`: turns data of `v` into data of `v + 1`. */
  upcast?: Record<number, Upcaster>;
}

/**
 * Options of {@linkcode jsonCodec}: one entry per event type of the union,
 * each required, so a type added to the union without a schema does not
 * compile.
 *
 * @example
 * ```ts
 * import type { JsonCodecOptions, TypedEvent } from "@getpup/pupsourcing";
 *
 * type E = TypedEvent<"Opened", { owner: string }> | TypedEvent<"Closed", null>;
 * const options: JsonCodecOptions<E> = { events: { Opened: {}, Closed: {} } };
 * ```
 */
export interface JsonCodecOptions<E extends TypedEvent> {
  /** Each event type's schema. */
  events: { [Type in E["type"]]: EventSchema };
}

/**
 * An event type the codec does not know, in `encode` or `decode`.
 *
 * @example
 * ```ts
 * import { UnknownEventTypeError } from "@getpup/pupsourcing";
 *
 * const error = new UnknownEventTypeError("Refunded", ["Paid"]);
 * console.log(error.eventType); // "Refunded"
 * ```
 */
export class UnknownEventTypeError extends PupsourcingError {
  /** The unknown type. */
  readonly eventType: string;

  /** Creates the error for `eventType`; `known` are the codec's types. */
  constructor(eventType: string, known: readonly string[]) {
    super(
      `Unknown event type ${show(eventType)}: expected one of the codec's types ` +
        `(${known.join(", ")}); add it to the codec's events`,
    );
    this.eventType = eventType;
  }
}

/**
 * A stored event whose payload does not decode: not JSON, a version with
 * no upcaster path to the current one, or an upcaster that threw. `cause`
 * holds the underlying error when there is one.
 *
 * @example
 * ```ts
 * import { EventDecodeError } from "@getpup/pupsourcing";
 *
 * const error = new EventDecodeError(
 *   { eventId: "0190a6e0-0000-7000-8000-000000000000", eventType: "Paid", eventVersion: 4 },
 *   "a version the codec knows (1 to 2)",
 * );
 * console.log(error.eventVersion); // 4
 * ```
 */
export class EventDecodeError extends PupsourcingError {
  /** The event's id. */
  readonly eventId: string;
  /** The event's type. */
  readonly eventType: string;
  /** The stored version. */
  readonly eventVersion: number;

  /** Creates the error; `expected` says what the codec needed. */
  constructor(
    event: Pick<StoredForm, "eventId" | "eventType" | "eventVersion">,
    expected: string,
    options?: ErrorOptions,
  ) {
    const cause = options?.cause;
    super(
      `Cannot decode event ${event.eventId} (${event.eventType} version ${event.eventVersion}): ` +
        `expected ${expected}` +
        (cause === undefined
          ? ""
          : `, got ${cause instanceof Error ? cause.message : show(cause)}`),
      options,
    );
    this.eventId = event.eventId;
    this.eventType = event.eventType;
    this.eventVersion = event.eventVersion;
  }
}

/** One event type's schema, checked: its version and the upcaster of each older version. */
interface Resolved {
  version: number;
  upcasters: Map<number, Upcaster>;
  oldest: number;
}

/**
 * A codec for a union of typed events, as bigint-safe JSON (a bigint is
 * stored as `{"$bigint":"123"}`). The encoder writes each type's current
 * version; the decoder runs the upcasters from the stored version up.
 *
 * @throws {ValidationError} at construction on a bad schema: a version
 * that is not an integer >= 1, or upcasters with a gap (each version from
 * the oldest upcaster's to the current one's minus one needs one) or
 * beyond the current version.
 *
 * @example Two versions of an event
 * ```ts
 * import { jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Deposited = TypedEvent<"Deposited", { amount: bigint; currency: string }>;
 * const codec = jsonCodec<Deposited>({
 *   events: { Deposited: { version: 2, upcast: { 1: (data) => ({ ...data, currency: "EUR" }) } } },
 * });
 * const encoded = codec.encode({ type: "Deposited", data: { amount: 5n, currency: "USD" } });
 * console.log(encoded.eventVersion); // 2
 * const old = codec.decode({
 *   eventId: "0190a6e0-0000-7000-8000-000000000000",
 *   eventType: "Deposited",
 *   eventVersion: 1,
 *   payload: new TextEncoder().encode('{"amount":{"$bigint":"7"}}'),
 *   metadata: null,
 * });
 * console.log(old.data); // { amount: 7n, currency: "EUR" }
 * ```
 */
export function jsonCodec<E extends TypedEvent>(options: JsonCodecOptions<E>): EventCodec<E> {
  const { events } = checkOptions("options", options, ["events"]);
  if (typeof events !== "object" || events === null || Object.keys(events).length === 0) {
    throw new ValidationError(
      "options.events",
      "an object with one schema per event type, such as { Deposited: {} }",
      show(events),
    );
  }
  const schemas = new Map<string, Resolved>(
    Object.entries(events as Record<string, EventSchema>).map((
      [type, schema],
    ) => [type, resolve(`options.events.${type}`, schema)]),
  );
  const eventTypes = Object.freeze([...schemas.keys()]) as readonly E["type"][];
  const schemaOf = (type: string): Resolved => {
    const schema = schemas.get(type);
    if (!schema) throw new UnknownEventTypeError(type, eventTypes);
    return schema;
  };
  return {
    eventTypes,
    encode(event: E): EncodedEvent {
      const { version } = schemaOf(event?.type);
      const encoded: EncodedEvent = {
        eventType: event.type,
        eventVersion: version,
        payload: toJsonBytes(event.data ?? null),
      };
      if (event.metadata !== undefined) encoded.metadata = event.metadata;
      return encoded;
    },
    decode(stored: StoredForm): E {
      const { version, upcasters, oldest } = schemaOf(stored.eventType);
      const from = stored.eventVersion;
      if (from > version || (from < version && from < oldest)) {
        throw new EventDecodeError(
          stored,
          `a version the codec reads (${oldest === version ? version : `${oldest} to ${version}`})`,
        );
      }
      let data: unknown;
      try {
        data = fromJsonBytes(stored.payload);
      } catch (cause) {
        throw new EventDecodeError(stored, "a JSON payload", { cause });
      }
      for (let v = from; v < version; v++) {
        try {
          data = upcasters.get(v)!(data);
        } catch (cause) {
          throw new EventDecodeError(stored, `the upcaster from version ${v} to succeed`, {
            cause,
          });
        }
      }
      const event = { type: stored.eventType, data } as E;
      if (stored.metadata !== null && stored.metadata !== undefined) {
        event.metadata = stored.metadata;
      }
      return event;
    },
  };
}

/** Checks one event type's schema. */
function resolve(field: string, schema: EventSchema): Resolved {
  const { version = 1, upcast = {} } = checkOptions(field, schema, ["version", "upcast"]);
  if (!Number.isInteger(version) || version < 1 || version > 2_147_483_647) {
    throw new ValidationError(`${field}.version`, "an integer from 1 to 2147483647", show(version));
  }
  const upcasters = new Map<number, Upcaster>();
  for (const [key, upcaster] of Object.entries(upcast)) {
    const from = Number(key);
    if (!Number.isInteger(from) || from < 1 || from >= version) {
      throw new ValidationError(
        `${field}.upcast.${key}`,
        `an upcaster keyed by a stored version from 1 to ${version - 1} (the current version ` +
          `minus one): it turns data of that version into the next`,
        `the key ${show(key)}`,
      );
    }
    if (typeof upcaster !== "function") {
      throw new ValidationError(
        `${field}.upcast.${key}`,
        "a function (data) => data",
        show(upcaster),
      );
    }
    upcasters.set(from, upcaster);
  }
  const oldest = upcasters.size === 0 ? version : Math.min(...upcasters.keys());
  for (let v = oldest; v < version; v++) {
    if (!upcasters.has(v)) {
      throw new ValidationError(
        `${field}.upcast.${v}`,
        `an upcaster for every version from ${oldest} to ${version - 1}, without gaps`,
        "none",
      );
    }
  }
  return { version, upcasters, oldest };
}
