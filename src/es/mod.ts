/**
 * The core of pupsourcing: event types, errors, the logger interface, ids
 * and segment hashing. It imports nothing, not even postgres.js.
 *
 * @example
 * ```ts
 * import { type Event, uuidv7 } from "@getpup/pupsourcing";
 *
 * const event: Event = {
 *   aggregateType: "User",
 *   aggregateId: uuidv7(),
 *   eventType: "UserRegistered",
 *   payload: new TextEncoder().encode("{}"),
 * };
 * ```
 *
 * @module
 */

export type {
  AggregateAppend,
  AppendResult,
  Cursor,
  Event,
  ExpectedVersion,
  JsonValue,
  PersistedEvent,
  Stream,
} from "./event.ts";
export { START } from "./event.ts";
export {
  DatabaseUnavailableError,
  DuplicateEventError,
  OptimisticConcurrencyError,
  ProjectionError,
  PupsourcingError,
  SchemaMissingError,
  TransactionIdRegressionError,
  ValidationError,
} from "./errors.ts";
export { MAX_APPEND_PAYLOAD_BYTES, MAX_EVENT_PAYLOAD_BYTES } from "./limits.ts";
export type { LogFields, Logger } from "./logger.ts";
export { isUuid, uuidv7 } from "./uuid.ts";
export { fnv1a32, segmentOf } from "./segment.ts";
export type {
  AppendOptions,
  EventStore,
  ReadEventsOptions,
  ReadStreamOptions,
  Snapshot,
  SnapshotStore,
} from "./store.ts";
export { InMemoryStore } from "./memory_store.ts";
export {
  type EncodedEvent,
  type EventCodec,
  EventDecodeError,
  type EventSchema,
  jsonCodec,
  type JsonCodecOptions,
  type StoredForm,
  type TypedEvent,
  UnknownEventTypeError,
  type Upcaster,
} from "./codec.ts";
export { fromJsonBytes, toJsonBytes } from "./json.ts";
export {
  type AggregateState,
  aggregateStream,
  type CommandOptions,
  type CommandResult,
  DeciderError,
  handleCommand,
  type StateOptions,
  type StreamName,
} from "./command.ts";
export { type SnapshotPolicy } from "./snapshot.ts";
export { uuidv5 } from "./uuid_v5.ts";
