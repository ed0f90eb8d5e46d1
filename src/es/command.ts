/**
 * Deciders and command handling: rebuild an aggregate's state from its
 * stream (from a snapshot when there is one), decide new events from it,
 * and append them with the exact version read, deciding again on a
 * conflict. Given a command id, the events' ids derive from it, so a
 * command sent twice is applied once and the second call gets the first
 * one's result.
 *
 * @module
 */

import type { AppendResult, Event, PersistedEvent } from "./event.ts";
import {
  DuplicateEventError,
  OptimisticConcurrencyError,
  PupsourcingError,
  ValidationError,
} from "./errors.ts";
import type { EventCodec, TypedEvent } from "./codec.ts";
import { checkOptions } from "./options.ts";
import { show } from "./show.ts";
import {
  crossesSnapshot,
  type SnapshotPolicy,
  validateSnapshotPolicy,
  type ValidSnapshotPolicy,
} from "./snapshot.ts";
import type { EventStore } from "./store.ts";
import { toResult } from "./stored.ts";
import { uuidv5 } from "./uuid_v5.ts";
import { requireName, requireNewName } from "./validate.ts";

/**
 * One aggregate: its type and id.
 *
 * @example
 * ```ts
 * import type { StreamName } from "@getpup/pupsourcing";
 *
 * const account: StreamName = { aggregateType: "Account", aggregateId: "acc-1" };
 * ```
 */
export interface StreamName {
  /** The kind of aggregate. */
  aggregateType: string;
  /** The aggregate's id. */
  aggregateId: string;
}

/**
 * How an aggregate's state is built from its events.
 *
 * @example
 * ```ts
 * import { jsonCodec, type StateOptions, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Counted = TypedEvent<"Counted", { by: number }>;
 * const options: StateOptions<number, Counted, unknown> = {
 *   initialState: () => 0,
 *   evolve: (total, event) => total + event.data.by,
 *   codec: jsonCodec<Counted>({ events: { Counted: {} } }),
 * };
 * ```
 */
export interface StateOptions<State, E extends TypedEvent, Db> {
  /** The state before any event; a function, so no two runs share one object. */
  initialState: () => State;
  /** The state after one more event. */
  evolve: (state: State, event: E) => State;
  /** Turns stored events into typed ones and back. */
  codec: EventCodec<E>;
  /** Start from snapshots, and keep them (see {@linkcode SnapshotPolicy}). */
  snapshots?: SnapshotPolicy<State, Db>;
}

/**
 * An aggregate's state and the version it reflects.
 *
 * @example
 * ```ts
 * import type { AggregateState } from "@getpup/pupsourcing";
 *
 * const empty: AggregateState<number> = { state: 0, version: 0n };
 * ```
 */
export interface AggregateState<State> {
  /** The state after every event up to `version`. */
  state: State;
  /** The aggregate's version (`0n`: no events). */
  version: bigint;
}

/**
 * Options of {@linkcode handleCommand}.
 *
 * @example Retry up to 10 times, idempotent by the request's id
 * ```ts
 * import type { CommandOptions, TypedEvent } from "@getpup/pupsourcing";
 * import { jsonCodec } from "@getpup/pupsourcing";
 *
 * type Counted = TypedEvent<"Counted", { by: number }>;
 * const options: CommandOptions<number, Counted, unknown> = {
 *   initialState: () => 0,
 *   evolve: (total, event) => total + event.data.by,
 *   codec: jsonCodec<Counted>({ events: { Counted: {} } }),
 *   retries: 10,
 *   commandId: "request-42",
 * };
 * ```
 */
export interface CommandOptions<State, E extends TypedEvent, Db>
  extends StateOptions<State, E, Db> {
  /** How many times to re-read and decide again after a conflict; default 3. */
  retries?: number;
  /** Milliseconds to wait before retry `attempt` (1, 2, ...); default: jittered exponential. */
  backoff?: (attempt: number) => number;
  /**
   * The command's id (any non-blank string, such as a request id): the
   * events' ids derive from it, so the same command handled again appends
   * nothing and returns the first handling's result.
   */
  commandId?: string;
}

/**
 * What {@linkcode handleCommand} did.
 *
 * @example
 * ```ts
 * import type { CommandResult, TypedEvent } from "@getpup/pupsourcing";
 *
 * function appended(result: CommandResult<number, TypedEvent>): number {
 *   return result.newEvents.length;
 * }
 * ```
 */
export interface CommandResult<State, E extends TypedEvent> {
  /** The state after the new events. */
  newState: State;
  /** The events decided (empty when there was nothing to do). */
  newEvents: E[];
  /** The append's result; `undefined` when no event was decided. */
  appendResult: AppendResult | undefined;
  /** The aggregate's version after the command. */
  version: bigint;
}

/**
 * A decider's `decide` or `evolve` threw: nothing was appended. `cause` is
 * what it threw (a domain error such as "insufficient funds", or a bug).
 *
 * @example Unwrap a domain error
 * ```ts
 * import { DeciderError } from "@getpup/pupsourcing";
 *
 * function reason(error: unknown): unknown {
 *   return error instanceof DeciderError ? error.cause : error;
 * }
 * ```
 */
export class DeciderError extends PupsourcingError {
  /** Which function threw. */
  readonly step: "decide" | "evolve";
  /** The aggregate's type. */
  readonly aggregateType: string;
  /** The aggregate's id. */
  readonly aggregateId: string;

  /** Creates the error; `cause` is what the function threw. */
  constructor(step: "decide" | "evolve", stream: StreamName, detail: string, cause: unknown) {
    super(
      `${step} threw on ${stream.aggregateType} "${stream.aggregateId}"${detail}: ` +
        `expected it to return, got ${
          cause instanceof Error ? `${cause.name}: ${cause.message}` : show(cause)
        }; nothing was appended`,
      { cause },
    );
    this.step = step;
    this.aggregateType = stream.aggregateType;
    this.aggregateId = stream.aggregateId;
  }
}

/** A loaded aggregate, and the events read to load it (those after the snapshot). */
interface Loaded<State> extends AggregateState<State> {
  read: PersistedEvent[];
}

/**
 * Rebuilds an aggregate's state from its stream: from the newest snapshot
 * of the policy's version when there is one, then the events after it.
 *
 * @throws {DeciderError} when `evolve` throws.
 * @throws {EventDecodeError} when an event does not decode.
 * @throws {ValidationError} on a bad stream name or options.
 *
 * @example
 * ```ts
 * import { aggregateStream, InMemoryStore, jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Counted = TypedEvent<"Counted", { by: number }>;
 * const { state, version } = await aggregateStream(
 *   new InMemoryStore(),
 *   undefined,
 *   { aggregateType: "Counter", aggregateId: "c-1" },
 *   {
 *     initialState: () => 0,
 *     evolve: (total, event: Counted) => total + event.data.by,
 *     codec: jsonCodec<Counted>({ events: { Counted: {} } }),
 *   },
 * );
 * console.log(state, version); // 0 0n
 * ```
 */
export async function aggregateStream<State, E extends TypedEvent, Db>(
  store: EventStore<Db>,
  db: Db,
  stream: StreamName,
  options: StateOptions<State, E, Db>,
): Promise<AggregateState<State>> {
  const valid = validateState(stream, options, ["initialState", "evolve", "codec", "snapshots"]);
  const { state, version } = await load(store, db, stream, valid);
  return { state, version };
}

/**
 * Handles a command: reads the aggregate's state, runs `decide` on it,
 * and appends the events it returns with the exact version read. On an
 * `OptimisticConcurrencyError` it reads again and decides again, up to
 * `retries` times. With a snapshot policy, the append that crosses a
 * multiple of `every` writes a snapshot in its own transaction.
 *
 * With a `commandId`, the events' ids are UUIDv5s of it (and of the
 * aggregate and the event's index), so handling the same command again (a
 * client that timed out and sent it again) appends nothing and returns
 * the first handling's result.
 *
 * @throws {DeciderError} when `decide` or `evolve` throws; nothing is appended.
 * @throws {OptimisticConcurrencyError} when the retries are used up.
 * @throws {ValidationError} on bad options (`retries` not an integer >= 0,
 * a snapshot policy with `every < 1`, ...).
 *
 * @example Deposit into an account, in memory
 * ```ts
 * import { handleCommand, InMemoryStore, jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Deposited = TypedEvent<"Deposited", { amount: bigint }>;
 * const store = new InMemoryStore();
 * const { newState, version } = await handleCommand(
 *   store,
 *   undefined,
 *   { aggregateType: "Account", aggregateId: "acc-1" },
 *   (balance: bigint): Deposited[] => [{ type: "Deposited", data: { amount: 5n } }],
 *   {
 *     initialState: () => 0n,
 *     evolve: (balance, event) => balance + event.data.amount,
 *     codec: jsonCodec<Deposited>({ events: { Deposited: {} } }),
 *     commandId: "deposit-1",
 *   },
 * );
 * console.log(newState, version); // 5n 1n
 * ```
 */
export async function handleCommand<State, E extends TypedEvent, Db>(
  store: EventStore<Db>,
  db: Db,
  stream: StreamName,
  decide: (state: State) => E | readonly E[],
  options: CommandOptions<State, E, Db>,
): Promise<CommandResult<State, E>> {
  const valid = validateState(stream, options, [
    "initialState",
    "evolve",
    "codec",
    "snapshots",
    "retries",
    "backoff",
    "commandId",
  ]);
  const { retries = 3, backoff = defaultBackoff, commandId } = options;
  if (!Number.isSafeInteger(retries) || retries < 0) {
    throw new ValidationError("options.retries", "an integer >= 0", show(retries));
  }
  if (typeof decide !== "function") {
    throw new ValidationError("decide", "a function (state) => events", show(decide));
  }
  if (typeof backoff !== "function") {
    throw new ValidationError(
      "options.backoff",
      "a function (attempt) => milliseconds",
      show(backoff),
    );
  }
  if (commandId !== undefined) requireNewName("options.commandId", commandId);
  const ids = commandId === undefined ? undefined : new CommandIds(stream, commandId);

  for (let attempt = 0;; attempt++) {
    const loaded = await load(store, db, stream, valid);
    if (ids) {
      // Handled already: its events are among those just read.
      const done = await ids.findIn(loaded.read) !== undefined &&
        await original(store, db, stream, valid, ids);
      if (done) return done;
    }
    let decided: E[];
    try {
      const out = decide(loaded.state);
      decided = Array.isArray(out) ? [...out] : [out as E];
    } catch (cause) {
      // A retried command may no longer be allowed (its first handling
      // changed the state) while its events sit before the snapshot read.
      if (ids) {
        const done = await original(store, db, stream, valid, ids);
        if (done) return done;
      }
      throw new DeciderError("decide", stream, "", cause);
    }
    if (decided.length === 0) {
      return {
        newState: loaded.state,
        newEvents: [],
        appendResult: undefined,
        version: loaded.version,
      };
    }
    const newState = fold(valid, stream, loaded.state, decided, loaded.version);
    const eventIds = ids ? await ids.first(decided.length) : undefined;
    const events: Event[] = decided.map((event, i) => ({
      ...stream,
      ...valid.codec.encode(event),
      ...(eventIds ? { eventId: eventIds[i] } : {}),
    }));
    try {
      const appendResult = await appendWithSnapshot(
        store,
        db,
        stream,
        valid.snapshots,
        events,
        loaded.version,
        newState,
      );
      return { newState, newEvents: decided, appendResult, version: appendResult.toVersion };
    } catch (error) {
      if (ids && error instanceof DuplicateEventError && eventIds?.includes(error.eventId)) {
        const done = await original(store, db, stream, valid, ids);
        if (done) return done;
      }
      if (!(error instanceof OptimisticConcurrencyError) || attempt >= retries) throw error;
      await new Promise((resolve) => setTimeout(resolve, backoff(attempt + 1)));
    }
  }
}

/** The checked options of a state rebuild. */
interface ValidState<State, E extends TypedEvent, Db> {
  initialState: () => State;
  evolve: (state: State, event: E) => State;
  codec: EventCodec<E>;
  snapshots: ValidSnapshotPolicy<State, Db> | undefined;
}

function validateState<State, E extends TypedEvent, Db>(
  stream: StreamName,
  options: StateOptions<State, E, Db>,
  known: readonly (keyof CommandOptions<State, E, Db>)[],
): ValidState<State, E, Db> {
  checkOptions("stream", stream, ["aggregateType", "aggregateId"]);
  requireName("stream.aggregateType", stream?.aggregateType);
  requireName("stream.aggregateId", stream?.aggregateId);
  const { initialState, evolve, codec, snapshots } = checkOptions(
    "options",
    options as CommandOptions<State, E, Db>,
    known,
  );
  if (typeof initialState !== "function") {
    throw new ValidationError("options.initialState", "a function () => state", show(initialState));
  }
  if (typeof evolve !== "function") {
    throw new ValidationError("options.evolve", "a function (state, event) => state", show(evolve));
  }
  if (
    typeof codec !== "object" || codec === null || typeof codec.decode !== "function" ||
    typeof codec.encode !== "function"
  ) {
    throw new ValidationError("options.codec", "a codec such as jsonCodec(...)", show(codec));
  }
  return {
    initialState,
    evolve,
    codec,
    snapshots: snapshots === undefined
      ? undefined
      : validateSnapshotPolicy("options.snapshots", snapshots),
  };
}

/** Reads the snapshot (if any) and the events after it, and folds them. */
async function load<State, E extends TypedEvent, Db>(
  store: EventStore<Db>,
  db: Db,
  stream: StreamName,
  valid: ValidState<State, E, Db>,
): Promise<Loaded<State>> {
  const { aggregateType, aggregateId } = stream;
  const policy = valid.snapshots;
  const snapshot = policy &&
    await policy.store.readSnapshot(db, aggregateType, aggregateId, policy.version);
  const state = snapshot ? policy.decode(snapshot.state) : valid.initialState();
  const { events } = await store.readAggregateStream(
    db,
    aggregateType,
    aggregateId,
    snapshot ? { fromVersion: snapshot.aggregateVersion + 1n } : {},
  );
  const from = snapshot?.aggregateVersion ?? 0n;
  return {
    state: fold(valid, stream, state, events.map((e) => valid.codec.decode(e)), from),
    version: events.at(-1)?.aggregateVersion ?? from,
    read: events,
  };
}

/** Applies `events` (the first at version `from + 1`) with `evolve`. */
function fold<State, E extends TypedEvent, Db>(
  valid: ValidState<State, E, Db>,
  stream: StreamName,
  state: State,
  events: readonly E[],
  from: bigint,
): State {
  events.forEach((event, i) => {
    try {
      state = valid.evolve(state, event);
    } catch (cause) {
      throw new DeciderError(
        "evolve",
        stream,
        ` at ${event.type} (version ${from + BigInt(i + 1)})`,
        cause,
      );
    }
  });
  return state;
}

/** Appends, and in the same transaction writes a snapshot when the append crosses one. */
async function appendWithSnapshot<State, Db>(
  store: EventStore<Db>,
  db: Db,
  stream: StreamName,
  policy: ValidSnapshotPolicy<State, Db> | undefined,
  events: Event[],
  version: bigint,
  newState: State,
): Promise<AppendResult> {
  const to = version + BigInt(events.length);
  if (!policy || !crossesSnapshot(policy.every, version, to)) {
    return await store.append(db, events, { expectedVersion: version });
  }
  // Encoded before the transaction: a state that does not encode fails
  // before anything is written.
  const state = policy.encode(newState);
  return await policy.store.transaction(db, async (tx) => {
    const result = await store.append(tx, events, { expectedVersion: version });
    await policy.store.writeSnapshot(tx, {
      ...stream,
      aggregateVersion: result.toVersion,
      snapshotVersion: policy.version,
      state,
    });
    return result;
  });
}

/**
 * The result of the command's first handling, found by its events' ids
 * in the whole stream (snapshots left aside); `undefined` when the
 * command has not been handled.
 */
async function original<State, E extends TypedEvent, Db>(
  store: EventStore<Db>,
  db: Db,
  stream: StreamName,
  valid: ValidState<State, E, Db>,
  ids: CommandIds,
): Promise<CommandResult<State, E> | undefined> {
  const { events } = await store.readAggregateStream(db, stream.aggregateType, stream.aggregateId);
  const start = await ids.findIn(events);
  if (start === undefined) return undefined;
  let end = start + 1;
  while (
    end < events.length && events[end].eventId === (await ids.first(end - start + 1))[end - start]
  ) {
    end++;
  }
  const stored = events.slice(0, end);
  const decoded = stored.map((e) => valid.codec.decode(e));
  const newState = fold(valid, stream, valid.initialState(), decoded, 0n);
  const appendResult = toResult(stored.slice(start));
  return {
    newState,
    newEvents: decoded.slice(start),
    appendResult,
    version: appendResult.toVersion,
  };
}

/** The name-based ids of a command's events, computed once each. */
class CommandIds {
  readonly #ids: string[] = [];
  readonly #name: string;

  constructor(stream: StreamName, commandId: string) {
    // NUL cannot occur in names, so the parts cannot run into each other.
    this.#name = `${stream.aggregateType}\0${stream.aggregateId}\0${commandId}`;
  }

  /** The ids of the command's first `count` events. */
  async first(count: number): Promise<string[]> {
    while (this.#ids.length < count) {
      this.#ids.push(await uuidv5(COMMAND_NAMESPACE, `${this.#name}\0${this.#ids.length}`));
    }
    return this.#ids.slice(0, count);
  }

  /** The index in `events` of the command's first event, if it is there. */
  async findIn(events: readonly PersistedEvent[]): Promise<number | undefined> {
    const [id] = await this.first(1);
    const index = events.findIndex((event) => event.eventId === id);
    return index === -1 ? undefined : index;
  }
}

/** The UUIDv5 namespace of command-derived event ids. */
const COMMAND_NAMESPACE = "0b1e5f2c-5a8e-4c43-9d0b-8f4c6f1d2a73";

/** Up to 2^attempt × 5 ms (at most 500 ms), jittered so racing handlers spread out. */
function defaultBackoff(attempt: number): number {
  return Math.random() * Math.min(500, 5 * 2 ** attempt);
}
