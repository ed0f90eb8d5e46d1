/**
 * An event store in memory, with the semantics of `PostgresStore` (the
 * same contract tests run against both): for tests of deciders and
 * command handlers without a database, and for prototypes. It keeps
 * snapshots too.
 *
 * @module
 */

import type {
  AggregateAppend,
  AppendResult,
  Event,
  ExpectedVersion,
  PersistedEvent,
  Stream,
} from "./event.ts";
import { DuplicateEventError, OptimisticConcurrencyError } from "./errors.ts";
import { segmentOf } from "./segment.ts";
import type {
  AppendOptions,
  EventStore,
  ReadEventsOptions,
  ReadStreamOptions,
  Snapshot,
  SnapshotStore,
} from "./store.ts";
import {
  allRetried,
  asRetry,
  describeStored,
  eventIds,
  persistedEvent,
  toResult,
} from "./stored.ts";
import {
  requireName,
  validateAppendOptions,
  validateAppends,
  validateEvents,
  validateReadOptions,
  validateStreamOptions,
} from "./validate.ts";

/** One validated append with the event ids it will store. */
interface Planned {
  events: readonly Event[];
  expected: ExpectedVersion;
  ids: string[];
  callerIds: string[];
}

/**
 * An event store in memory. Every call takes a `db` argument to fit
 * {@linkcode EventStore}; it is ignored (pass `undefined`). Each append is
 * its own transaction, with its own transaction id, so the global log and
 * its cursors work as in PostgreSQL.
 *
 * @example Append and read back
 * ```ts
 * import { InMemoryStore } from "@getpup/pupsourcing";
 *
 * const store = new InMemoryStore();
 * const payload = new TextEncoder().encode("{}");
 * await store.append(undefined, [
 *   { aggregateType: "User", aggregateId: "u-1", eventType: "UserRegistered", payload },
 * ], { expectedVersion: "no_stream" });
 * const stream = await store.readAggregateStream(undefined, "User", "u-1");
 * console.log(stream.version); // 1n
 * ```
 */
export class InMemoryStore implements EventStore<unknown>, SnapshotStore<unknown> {
  /** Every event, in log order. */
  readonly #log: PersistedEvent[] = [];
  /** Each aggregate's events, in version order. */
  readonly #streams = new Map<string, PersistedEvent[]>();
  /** Every event by its id. */
  readonly #byId = new Map<string, PersistedEvent>();
  /** Snapshots by aggregate and shape version. */
  readonly #snapshots = new Map<string, Snapshot>();
  #lastTransactionId = 0n;
  #lastPosition = 0n;

  /**
   * Appends events to one aggregate; see `EventStore.append`.
   *
   * @throws {ValidationError} on bad input.
   * @throws {OptimisticConcurrencyError} when the expected version does not hold.
   * @throws {DuplicateEventError} when an id is stored and this is no exact retry.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * const store = new InMemoryStore();
   * const payload = new TextEncoder().encode("{}");
   * const result = await store.append(undefined, [
   *   { aggregateType: "User", aggregateId: "u-1", eventType: "Registered", payload },
   * ]);
   * console.log(result.toVersion); // 1n
   * ```
   */
  append(
    _db: unknown,
    events: readonly Event[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    try {
      validateEvents(events);
      const { expected, signal } = validateAppendOptions(options);
      signal?.throwIfAborted();
      const [result] = this.#appendAll([{ events, expected, ...eventIds(events) }]);
      return Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Appends to several aggregates: every entry is stored, or none is; see
   * `EventStore.appendMany`.
   *
   * @throws {ValidationError} on bad input.
   * @throws {OptimisticConcurrencyError} for the first aggregate (by type,
   * then id) whose expected version does not hold.
   * @throws {DuplicateEventError} when an id is stored and this is no exact retry.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * const store = new InMemoryStore();
   * const opened = (aggregateId: string) => ({
   *   events: [{ aggregateType: "Account", aggregateId, eventType: "Opened", payload: new Uint8Array() }],
   * });
   * const results = await store.appendMany(undefined, [opened("a"), opened("b")]);
   * console.log(results.length); // 2
   * ```
   */
  appendMany(_db: unknown, appends: readonly AggregateAppend[]): Promise<AppendResult[]> {
    try {
      const valid = validateAppends(appends);
      return Promise.resolve(
        this.#appendAll(valid.map((append) => ({ ...append, ...eventIds(append.events) }))),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads one aggregate's events in version order.
   *
   * @throws {ValidationError} on an empty name or a bad bound.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * const stream = await new InMemoryStore().readAggregateStream(undefined, "User", "u-1");
   * console.log(stream.version); // 0n
   * ```
   */
  readAggregateStream(
    _db: unknown,
    aggregateType: string,
    aggregateId: string,
    options: ReadStreamOptions = {},
  ): Promise<Stream> {
    try {
      requireName("aggregateType", aggregateType);
      requireName("aggregateId", aggregateId);
      const { fromVersion, toVersion } = validateStreamOptions(options);
      const events = (this.#streams.get(key(aggregateType, aggregateId)) ?? []).filter((event) =>
        (fromVersion === undefined || event.aggregateVersion >= fromVersion) &&
        (toVersion === undefined || event.aggregateVersion <= toVersion)
      ).map(copy);
      const version = events.at(-1)?.aggregateVersion ?? 0n;
      return Promise.resolve({ aggregateType, aggregateId, events, version });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads the global log after a cursor, in `(transactionId,
   * globalPosition)` order. Every append is committed when it returns, so
   * nothing is held back by a horizon.
   *
   * @throws {ValidationError} on bad options.
   *
   * @example
   * ```ts
   * import { InMemoryStore, START } from "@getpup/pupsourcing";
   *
   * const page = await new InMemoryStore().readEvents(undefined, { after: START, limit: 10 });
   * console.log(page.length); // 0
   * ```
   */
  readEvents(_db: unknown, options: ReadEventsOptions = {}): Promise<PersistedEvent[]> {
    try {
      const { after, limit, aggregateTypes, eventTypes, segments } = validateReadOptions(options);
      const page: PersistedEvent[] = [];
      for (const event of this.#log) {
        if (page.length === limit) break;
        const isAfter = event.transactionId > after.transactionId ||
          (event.transactionId === after.transactionId &&
            event.globalPosition > after.globalPosition);
        if (
          isAfter &&
          (aggregateTypes === undefined || aggregateTypes.includes(event.aggregateType)) &&
          (eventTypes === undefined || eventTypes.includes(event.eventType)) &&
          (segments === undefined ||
            segments.ids.includes(segmentOf(event.aggregateId, segments.count)))
        ) page.push(copy(event));
      }
      return Promise.resolve(page);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The newest snapshot of this shape version, never one ahead of the
   * stream; see `SnapshotStore.readSnapshot`.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * const snapshot = await new InMemoryStore().readSnapshot(undefined, "Account", "a", 1);
   * console.log(snapshot); // undefined
   * ```
   */
  readSnapshot(
    _db: unknown,
    aggregateType: string,
    aggregateId: string,
    snapshotVersion: number,
  ): Promise<Snapshot | undefined> {
    const snapshot = this.#snapshots.get(snapshotKey(aggregateType, aggregateId, snapshotVersion));
    const head = this.#streams.get(key(aggregateType, aggregateId))?.length ?? 0;
    return Promise.resolve(
      snapshot && snapshot.aggregateVersion <= BigInt(head) ? { ...snapshot } : undefined,
    );
  }

  /**
   * Keeps a snapshot unless a newer one of the same shape is kept.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * await new InMemoryStore().writeSnapshot(undefined, {
   *   aggregateType: "Account",
   *   aggregateId: "a",
   *   aggregateVersion: 0n,
   *   snapshotVersion: 1,
   *   state: new Uint8Array(),
   * });
   * ```
   */
  writeSnapshot(_db: unknown, snapshot: Snapshot): Promise<void> {
    const at = snapshotKey(snapshot.aggregateType, snapshot.aggregateId, snapshot.snapshotVersion);
    const kept = this.#snapshots.get(at);
    if (!kept || kept.aggregateVersion < snapshot.aggregateVersion) {
      this.#snapshots.set(at, { ...snapshot });
    }
    return Promise.resolve();
  }

  /**
   * Runs `work`. Appends in memory cannot fail half-way, and a snapshot
   * is written after the append it follows, so there is nothing to roll
   * back.
   *
   * @example
   * ```ts
   * import { InMemoryStore } from "@getpup/pupsourcing";
   *
   * const answer = await new InMemoryStore().transaction(undefined, () => Promise.resolve(42));
   * console.log(answer); // 42
   * ```
   */
  transaction<T>(db: unknown, work: (tx: unknown) => Promise<T>): Promise<T> {
    return work(db);
  }

  /**
   * Stores the appends as one transaction, or explains why not: exact
   * retries return their results, a reused id is a duplicate (before any
   * conflict), then the first refused version in lock order (type, then
   * id) is a conflict. Synchronous, so no other call runs in between.
   */
  #appendAll(planned: Planned[]): AppendResult[] {
    const retried = allRetried(planned.map((p) => this.#storedRetry(p)));
    if (retried) return retried;
    for (const p of [...planned].sort(lockOrder)) {
      const { aggregateType, aggregateId } = p.events[0];
      const actual = BigInt(this.#streams.get(key(aggregateType, aggregateId))?.length ?? 0);
      if (!holds(p.expected, actual)) {
        throw new OptimisticConcurrencyError(aggregateType, aggregateId, p.expected, actual);
      }
    }
    const transactionId = ++this.#lastTransactionId;
    const now = new Date();
    return planned.map((p) => {
      const { aggregateType, aggregateId } = p.events[0];
      const stream = this.#streams.get(key(aggregateType, aggregateId)) ?? [];
      this.#streams.set(key(aggregateType, aggregateId), stream);
      const stored = p.events.map((event, i) => {
        const persisted = persistedEvent({ ...event, payload: event.payload.slice() }, p.ids[i], {
          globalPosition: ++this.#lastPosition,
          transactionId,
          aggregateVersion: BigInt(stream.length + 1),
          createdAt: new Date(event.createdAt ?? now),
        });
        stream.push(persisted);
        this.#log.push(persisted);
        this.#byId.set(persisted.eventId, persisted);
        return persisted;
      });
      return toResult(stored.map(copy));
    });
  }

  /**
   * The earlier append's result when `p` is an exact retry of it;
   * `undefined` when none of its ids is stored.
   *
   * @throws {DuplicateEventError} when an id is stored, but not as this retry.
   */
  #storedRetry(p: Planned): AppendResult | undefined {
    const stored = p.callerIds.flatMap((id) => this.#byId.get(id) ?? []);
    if (stored.length === 0) return undefined;
    const { aggregateType, aggregateId } = p.events[0];
    const retry = asRetry(stored, p.ids, aggregateType, aggregateId, p.expected);
    if (retry) return toResult(retry.map(copy));
    throw new DuplicateEventError(stored[0].eventId, describeStored(stored[0]));
  }
}

function key(aggregateType: string, aggregateId: string): string {
  // Names cannot contain NUL, so the pair joined by one is unique.
  return `${aggregateType}\0${aggregateId}`;
}

function snapshotKey(aggregateType: string, aggregateId: string, version: number): string {
  return `${key(aggregateType, aggregateId)}\0${version}`;
}

function holds(expected: ExpectedVersion, actual: bigint): boolean {
  if (expected === "any") return true;
  if (expected === "no_stream") return actual === 0n;
  if (expected === "stream_exists") return actual > 0n;
  return expected === actual;
}

function lockOrder(a: Planned, b: Planned): number {
  const [x, y] = [a.events[0], b.events[0]];
  if (x.aggregateType !== y.aggregateType) return x.aggregateType < y.aggregateType ? -1 : 1;
  return x.aggregateId < y.aggregateId ? -1 : 1;
}

/** A stored event handed out: its payload a copy, so a caller cannot change the store. */
function copy(event: PersistedEvent): PersistedEvent {
  return { ...event, payload: event.payload.slice(), createdAt: new Date(event.createdAt) };
}
