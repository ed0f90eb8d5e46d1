/**
 * Typed projections: a projection built from a codec and one handler per
 * event type. The scope's event types are the handlers' (so other events
 * are filtered out in SQL), and each handler gets its event decoded and
 * typed.
 *
 * @module
 */

import type { TransactionSql } from "postgres";
import type { EventCodec, TypedEvent } from "../es/codec.ts";
import { UnknownEventTypeError } from "../es/codec.ts";
import type { PersistedEvent } from "../es/event.ts";
import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/validate.ts";
import type { Projection } from "./projection.ts";

/**
 * One handler per event type of the union `E`, each given its event typed,
 * the batch's transaction, and the stored event (positions, ids, metadata).
 *
 * @example
 * ```ts
 * import type { TypedEvent, TypedHandlers } from "@getpup/pupsourcing";
 *
 * type E = TypedEvent<"Deposited", { amount: number }> | TypedEvent<"Closed", null>;
 * const handlers: TypedHandlers<E> = {
 *   async Deposited(event, tx) {
 *     await tx`update totals set amount = amount + ${event.data.amount}`;
 *   },
 * };
 * ```
 */
export type TypedHandlers<E extends TypedEvent> = {
  [Type in E["type"]]?: (
    event: Extract<E, { type: Type }>,
    // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
    tx: TransactionSql<any>,
    stored: PersistedEvent,
  ) => void | Promise<void>;
};

/**
 * Options of {@linkcode typedProjection}.
 *
 * @example
 * ```ts
 * import { jsonCodec, type TypedEvent, type TypedProjectionOptions } from "@getpup/pupsourcing";
 *
 * type Opened = TypedEvent<"Opened", { owner: string }>;
 * const options: TypedProjectionOptions<Opened> = {
 *   name: "owners",
 *   codec: jsonCodec<Opened>({ events: { Opened: {} } }),
 *   handlers: { Opened: async (event, tx) => void await tx`insert into owners values (${event.data.owner})` },
 * };
 * ```
 */
export interface TypedProjectionOptions<E extends TypedEvent> {
  /** The projection's name: the key of its checkpoints. */
  name: string;
  /** Decodes the stored events. */
  codec: EventCodec<E>;
  /** The handlers; their event types are the projection's scope. Give these or `batch`. */
  handlers?: TypedHandlers<E>;
  /**
   * One handler for all of a batch's events at once (bulk upserts), each
   * decoded, in log order, with the stored events beside them. Give this
   * or `handlers`. If it throws, the batch runs again one event at a time
   * (each in a call of its own), so the error policy meets the event that
   * fails.
   */
  batch?: (
    events: readonly E[],
    // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
    tx: TransactionSql<any>,
    stored: readonly PersistedEvent[],
  ) => void | Promise<void>;
  /** With `batch`: only events of these types; default: every type the codec knows. */
  eventTypes?: readonly E["type"][];
  /** Only events of these aggregate types; default: all. */
  aggregateTypes?: readonly string[];
  /** Creates the read model's tables (idempotently); call it before running. */
  // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
  init?: (tx: TransactionSql<any>) => Promise<void>;
}

/**
 * A projection built by {@linkcode typedProjection}: a `Projection` with
 * its codec and its read model's `init`.
 *
 * @example
 * ```ts
 * import type { TypedEvent, TypedProjection } from "@getpup/pupsourcing";
 *
 * function scope(projection: TypedProjection<TypedEvent>): readonly string[] | undefined {
 *   return projection.eventTypes;
 * }
 * ```
 */
export interface TypedProjection<E extends TypedEvent> extends Projection {
  /** The codec the events are decoded with. */
  readonly codec: EventCodec<E>;
  /** The handlers' event types: the projection's scope. */
  readonly eventTypes: readonly E["type"][];
  /** Creates the read model's tables; a no-op when none was given. */
  // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
  init(tx: TransactionSql<any>): Promise<void>;
}

/**
 * Builds a projection from a codec and one handler per event type.
 *
 * @throws {ValidationError} on a bad name, no handlers, or a handler that is not a function.
 * @throws {UnknownEventTypeError} for a handler of a type the codec does not know.
 *
 * @example A read model of balances
 * ```ts
 * import { jsonCodec, typedProjection, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type E = TypedEvent<"Deposited", { amount: number }> | TypedEvent<"Withdrawn", { amount: number }>;
 * const balances = typedProjection<E>({
 *   name: "balances",
 *   codec: jsonCodec<E>({ events: { Deposited: {}, Withdrawn: {} } }),
 *   async init(tx) {
 *     await tx`create table if not exists balances (id text primary key, amount bigint not null)`;
 *   },
 *   handlers: {
 *     async Deposited(event, tx, stored) {
 *       await tx`insert into balances values (${stored.aggregateId}, ${event.data.amount})
 *         on conflict (id) do update set amount = balances.amount + excluded.amount`;
 *     },
 *   },
 * });
 * console.log(balances.eventTypes); // ["Deposited"]
 * ```
 */
export function typedProjection<E extends TypedEvent>(
  options: TypedProjectionOptions<E>,
): TypedProjection<E> {
  const { name, codec, handlers, batch, eventTypes, aggregateTypes, init } = checkOptions(
    "options",
    options,
    ["name", "codec", "handlers", "batch", "eventTypes", "aggregateTypes", "init"],
  );
  if (typeof codec !== "object" || codec === null || typeof codec.decode !== "function") {
    throw new ValidationError("options.codec", "a codec such as jsonCodec(...)", show(codec));
  }
  if (batch !== undefined) {
    return batchProjection(name!, codec, batch, eventTypes, aggregateTypes, init, handlers);
  }
  if (eventTypes !== undefined) {
    throw new ValidationError(
      "options.eventTypes",
      "undefined with handlers (their event types are the scope); it goes with batch",
      show(eventTypes),
    );
  }
  if (typeof handlers !== "object" || handlers === null || Object.keys(handlers).length === 0) {
    throw new ValidationError(
      "options.handlers",
      "an object with a handler per event type, such as { Deposited: async (event, tx) => ... }",
      show(handlers),
    );
  }
  const table = handlers as Record<string, unknown>;
  for (const [type, handler] of Object.entries(table)) {
    if (!(codec.eventTypes as readonly string[]).includes(type)) {
      throw new UnknownEventTypeError(type, codec.eventTypes);
    }
    if (typeof handler !== "function") {
      throw new ValidationError(
        `options.handlers.${type}`,
        "a function (event, tx, stored)",
        show(handler),
      );
    }
  }
  type Handler = (event: E, tx: Tx, stored: PersistedEvent) => void | Promise<void>;
  return withScope({
    name: name!,
    codec,
    eventTypes: Object.keys(table) as E["type"][],
    init: initOf(init),
    async handle(stored: PersistedEvent, tx: Tx) {
      const handler = table[stored.eventType] as Handler | undefined;
      // The scope filters in SQL; a caller running handle by hand may pass others.
      if (handler) await handler(codec.decode(stored), tx, stored);
    },
  }, aggregateTypes);
}

// deno-lint-ignore no-explicit-any -- any client configuration
type Tx = TransactionSql<any>;

/** The typed projection of a batch handler: `handle` is the batch of one. */
function batchProjection<E extends TypedEvent>(
  name: string,
  codec: EventCodec<E>,
  batch: NonNullable<TypedProjectionOptions<E>["batch"]>,
  eventTypes: readonly E["type"][] | undefined,
  aggregateTypes: readonly string[] | undefined,
  init: TypedProjectionOptions<E>["init"],
  handlers: TypedHandlers<E> | undefined,
): TypedProjection<E> {
  if (typeof batch !== "function") {
    throw new ValidationError("options.batch", "a function (events, tx, stored)", show(batch));
  }
  if (handlers !== undefined) {
    throw new ValidationError(
      "options.handlers",
      "undefined with batch (give one or the other)",
      show(handlers),
    );
  }
  for (const type of eventTypes ?? []) {
    if (!(codec.eventTypes as readonly string[]).includes(type)) {
      throw new UnknownEventTypeError(type, codec.eventTypes);
    }
  }
  const handleBatch = async (stored: readonly PersistedEvent[], tx: Tx) => {
    await batch(stored.map((event) => codec.decode(event)), tx, stored);
  };
  return withScope({
    name,
    codec,
    eventTypes: [...(eventTypes ?? codec.eventTypes)],
    init: initOf(init),
    handle: (stored, tx) => handleBatch([stored], tx),
    handleBatch,
  }, aggregateTypes);
}

function initOf(init: TypedProjectionOptions<TypedEvent>["init"]): (tx: Tx) => Promise<void> {
  if (init !== undefined && typeof init !== "function") {
    throw new ValidationError("options.init", "a function (tx) => Promise<void>", show(init));
  }
  return async (tx) => {
    await init?.(tx);
  };
}

function withScope<P extends Projection>(
  projection: P,
  aggregateTypes: readonly string[] | undefined,
): P {
  if (aggregateTypes !== undefined) projection.aggregateTypes = aggregateTypes;
  return projection;
}
