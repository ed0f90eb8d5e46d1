/**
 * The event-store interface: what every store offers, whatever keeps the
 * events. `PostgresStore` and {@linkcode InMemoryStore} implement it with
 * the same semantics (one contract test suite runs against both), so code
 * written against it (deciders, command handlers, tests) runs on either.
 *
 * @module
 */

import type {
  AggregateAppend,
  AppendResult,
  Cursor,
  Event,
  ExpectedVersion,
  PersistedEvent,
  Stream,
} from "./event.ts";

/**
 * Options of an append to one aggregate.
 *
 * @example
 * ```ts
 * import type { AppendOptions } from "@getpup/pupsourcing";
 *
 * const options: AppendOptions = { expectedVersion: "no_stream" };
 * ```
 */
export interface AppendOptions {
  /** What the aggregate's version must be; default `"any"`. */
  expectedVersion?: ExpectedVersion;
  /**
   * Gives the append up if it aborts before the append is sent to the
   * database (a coalesced append waiting in its store's queue): the append
   * then rejects with the signal's reason and stores nothing. Once sent,
   * the append's outcome arrives whatever the signal does.
   */
  signal?: AbortSignal;
}

/**
 * Options of a read of the global log.
 *
 * @example Page through the whole log
 * ```ts
 * import type { ReadEventsOptions } from "@getpup/pupsourcing";
 *
 * const options: ReadEventsOptions = { limit: 500, eventTypes: ["OrderPlaced"] };
 * ```
 */
export interface ReadEventsOptions {
  /** Read the events after this cursor; default: from the start. */
  after?: Cursor;
  /** At most this many events; default 1000. */
  limit?: number;
  /** Only events of these aggregate types; default: all. */
  aggregateTypes?: readonly string[];
  /** Only events of these event types; default: all. */
  eventTypes?: readonly string[];
  /**
   * Only events whose segment (`segmentOf(aggregateId, count)`) is one of
   * `ids`; default: all.
   */
  segments?: { count: number; ids: readonly number[] };
}

/**
 * Options of a read of one aggregate's stream.
 *
 * @example Read versions 5 to 10
 * ```ts
 * import type { ReadStreamOptions } from "@getpup/pupsourcing";
 *
 * const options: ReadStreamOptions = { fromVersion: 5n, toVersion: 10n };
 * ```
 */
export interface ReadStreamOptions {
  /** The first version to read (inclusive); default: the first. */
  fromVersion?: bigint;
  /** The last version to read (inclusive); default: the last. */
  toVersion?: bigint;
}

/**
 * An event store. `Db` is what each call runs on: for `PostgresStore` a
 * postgres.js client or transaction, for {@linkcode InMemoryStore} nothing
 * in particular (`undefined` will do).
 *
 * The semantics every store keeps:
 *
 * - Expected versions `"any"`, `"no_stream"`, `"stream_exists"` or an exact
 *   bigint (`0n`: no events); a miss throws `OptimisticConcurrencyError`.
 * - Re-appending events whose ids are stored for the same aggregate at the
 *   same versions returns the original result; any other reuse of an id
 *   throws `DuplicateEventError`.
 * - Bad input throws `ValidationError` and writes nothing.
 * - `readEvents` reads the global log in `(transactionId, globalPosition)`
 *   order after a cursor of that pair.
 *
 * @example Code that runs on any store
 * ```ts
 * import type { EventStore } from "@getpup/pupsourcing";
 *
 * async function version<Db>(store: EventStore<Db>, db: Db, id: string): Promise<bigint> {
 *   return (await store.readAggregateStream(db, "Account", id)).version;
 * }
 * ```
 */
export interface EventStore<Db> {
  /** Appends events to one aggregate, atomically with its version. */
  append(db: Db, events: readonly Event[], options?: AppendOptions): Promise<AppendResult>;
  /** Appends to several aggregates: every entry is stored, or none is. */
  appendMany(db: Db, appends: readonly AggregateAppend[]): Promise<AppendResult[]>;
  /** Reads one aggregate's events in version order. */
  readAggregateStream(
    db: Db,
    aggregateType: string,
    aggregateId: string,
    options?: ReadStreamOptions,
  ): Promise<Stream>;
  /** Reads the global log after a cursor. */
  readEvents(db: Db, options?: ReadEventsOptions): Promise<PersistedEvent[]>;
}

/**
 * A stored snapshot of an aggregate's state: the state after
 * `aggregateVersion`, serialized, under the state's shape version.
 *
 * @example
 * ```ts
 * import type { Snapshot } from "@getpup/pupsourcing";
 *
 * const snapshot: Snapshot = {
 *   aggregateType: "Account",
 *   aggregateId: "acc-1",
 *   aggregateVersion: 100n,
 *   snapshotVersion: 1,
 *   state: new TextEncoder().encode('{"balance":10}'),
 * };
 * ```
 */
export interface Snapshot {
  /** The kind of aggregate. */
  aggregateType: string;
  /** The aggregate's id. */
  aggregateId: string;
  /** The version of the last event folded into the state. */
  aggregateVersion: bigint;
  /** The shape version of the state; a snapshot of another shape is ignored. */
  snapshotVersion: number;
  /** The serialized state. */
  state: Uint8Array;
}

/**
 * Where snapshots are kept, and the transaction an append and its snapshot
 * share (so a snapshot is never ahead of the stream).
 *
 * @example
 * ```ts
 * import { InMemoryStore, type SnapshotStore } from "@getpup/pupsourcing";
 *
 * const snapshots: SnapshotStore<unknown> = new InMemoryStore();
 * ```
 */
export interface SnapshotStore<Db> {
  /**
   * The newest snapshot of the aggregate of this shape version that is
   * not ahead of the aggregate's stream; `undefined` when there is none.
   */
  readSnapshot(
    db: Db,
    aggregateType: string,
    aggregateId: string,
    snapshotVersion: number,
  ): Promise<Snapshot | undefined>;
  /** Keeps a snapshot, unless a newer one of the aggregate is kept already. */
  writeSnapshot(db: Db, snapshot: Snapshot): Promise<void>;
  /** Runs `work` in one transaction (joining `db`'s when it is one). */
  transaction<T>(db: Db, work: (tx: Db) => Promise<T>): Promise<T>;
}
