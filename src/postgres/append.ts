/**
 * The append: one statement, one round trip, whatever the number of
 * events. It moves the aggregate's head first, under the head row's lock,
 * and inserts the events only if the expected version held, so a conflict
 * takes no sequence value and writes nothing.
 *
 * @module
 */

import type { AppendResult, Event, ExpectedVersion, PersistedEvent } from "../es/event.ts";
import { DuplicateEventError, OptimisticConcurrencyError } from "../es/errors.ts";
import { describeExpected } from "../es/errors.ts";
import { fnv1a32 } from "../es/segment.ts";
import { uuidv7 } from "../es/uuid.ts";
import {
  type AppendShape,
  appendStatement,
  type AppendValues,
  eventValue,
  setsOptional,
} from "./append_sql.ts";
import { arrayLiteral, type Db, table, toBigInt } from "./db.ts";
import { decodeEvent, eventColumns } from "./decode.ts";
import {
  autocommits,
  claimTransactionNotify,
  notifyInTransaction,
  wakeUpAfterCommit,
} from "./notify.ts";
import { derivedName } from "./tables.ts";
import type { PostgresStore } from "./store.ts";

/** Appends validated events; see {@linkcode PostgresStore.append}. */
export async function append(
  db: Db,
  store: PostgresStore,
  events: readonly Event[],
  expected: ExpectedVersion,
): Promise<AppendResult> {
  const { aggregateType, aggregateId } = events[0];
  const { ids, callerIds } = eventIds(events);
  store.logger?.debug("append starting", {
    aggregateType,
    aggregateId,
    count: events.length,
    expectedVersion: describeExpected(expected),
  });
  // In a caller's transaction the statement NOTIFYs (at commit); on a plain
  // client the NOTIFY follows the commit (see notify.ts).
  const carriedNotify = store.notifyChannel !== undefined && !autocommits(db) &&
    claimTransactionNotify(db, store, aggregateType);
  let rows: unknown[][];
  try {
    rows = await insert(db, store, events, ids, callerIds, expected, carriedNotify);
  } catch (error) {
    const eventId = duplicateIdOf(error, store);
    if (!eventId) throw error;
    // A concurrent append stored the id first. On a plain client the failed
    // statement is over and the store can look at what was stored: an exact
    // retry gets its result, as it would have a moment later. In a caller's
    // transaction the failure has aborted the transaction: nothing more runs.
    const retry = autocommits(db)
      ? await storedRetry(db, store, events, ids, callerIds, expected).catch((lookup) => {
        // A client that autocommits but sits in a BEGIN of the caller's cannot look.
        if (lookup instanceof DuplicateEventError) throw lookup;
        return undefined;
      })
      : undefined;
    if (retry) return retry;
    throw new DuplicateEventError(eventId, "a concurrent append that stored it first", {
      cause: error,
    });
  }
  if (rows.length === 0) {
    if (carriedNotify) await notifyInTransaction(db, store, aggregateType);
    return await explainRefusal(db, store, events, ids, callerIds, expected);
  }
  if (autocommits(db)) wakeUpAfterCommit(db, store, aggregateType);

  const created = rows.map(([position, transaction, version, createdAt]) => ({
    globalPosition: toBigInt(position),
    transactionId: toBigInt(transaction),
    aggregateVersion: toBigInt(version),
    createdAt: createdAt as Date,
  })).sort((a, b) => (a.aggregateVersion < b.aggregateVersion ? -1 : 1));
  const result = toResult(events.map((event, i) => persistedEvent(event, ids[i], created[i])));
  store.logger?.info("events appended", {
    aggregateType,
    aggregateId,
    count: events.length,
    versions: `${result.fromVersion + 1n}-${result.toVersion}`,
    positions: result.globalPositions,
  });
  return result;
}

function insert(
  db: Db,
  store: PostgresStore,
  events: readonly Event[],
  ids: string[],
  callerIds: string[],
  expected: ExpectedVersion,
  notify: boolean,
): Promise<unknown[][]> {
  const { aggregateType, aggregateId } = events[0];
  const single = events.length === 1;
  const shape: AppendShape = {
    // "any" takes the aggregate in any state, the other new-aggregate
    // expectations only a new one; the rest need it to exist.
    head: expected === "any"
      ? "upsert"
      : expected === "no_stream" || expected === 0n
      ? "create"
      : "update",
    // Only caller-chosen ids can be stored already. Without any, the check
    // is left out of the statement: a prepared statement's generic plan,
    // made while the table was small, scans the whole table for it on
    // every append.
    checkIds: callerIds.length > 0,
    single,
    optional: events.some(setsOptional),
    notify,
  };
  const column = <T>(pick: (event: Event, i: number) => T) =>
    single ? pick(events[0], 0) : events.map(pick);
  const text = (value: string | null | (string | null)[]) =>
    Array.isArray(value) ? arrayLiteral(value) : value;
  // Only the values the statement names are computed.
  const value = (name: keyof AppendValues): AppendValues[keyof AppendValues] => {
    switch (name) {
      case "aggregateType":
        return aggregateType;
      case "aggregateId":
        return aggregateId;
      case "count":
        return events.length;
      case "exact":
        return typeof expected === "bigint" ? String(expected) : null;
      case "hash":
        return fnv1a32(aggregateId);
      case "known":
        return arrayLiteral(callerIds);
      case "channel":
        return store.notifyChannel ?? "";
      default:
        return text(column((e, i) => eventValue(name, e, ids[i])));
    }
  };
  const { strings, order } = appendStatement(store, shape);
  return db(strings, ...order.map(value)).values() as Promise<unknown[][]>;
}

/**
 * The statement wrote nothing: either the expected version did not hold,
 * or an event id is already stored. Tell which, and recognize an exact
 * retry of an earlier append, which returns that append's result.
 */
async function explainRefusal(
  db: Db,
  store: PostgresStore,
  events: readonly Event[],
  ids: string[],
  callerIds: string[],
  expected: ExpectedVersion,
): Promise<AppendResult> {
  const retry = await storedRetry(db, store, events, ids, callerIds, expected);
  if (retry) return retry;
  const { aggregateType, aggregateId } = events[0];
  return await concurrencyConflict(db, store, aggregateType, aggregateId, expected);
}

/** Throws the conflict of an aggregate whose expected version did not hold, with its version now. */
export async function concurrencyConflict(
  db: Db,
  store: PostgresStore,
  aggregateType: string,
  aggregateId: string,
  expected: ExpectedVersion,
): Promise<never> {
  const [head] = await db`
    select aggregate_version from ${table(db, store.tables.aggregateHeads)}
    where aggregate_type = ${aggregateType} and aggregate_id = ${aggregateId}
  `.values();
  const actual = head ? toBigInt(head[0]) : 0n;
  store.logger?.error("optimistic concurrency conflict", {
    aggregateType,
    aggregateId,
    expectedVersion: describeExpected(expected),
    actualVersion: actual,
  });
  throw new OptimisticConcurrencyError(aggregateType, aggregateId, expected, actual);
}

/**
 * The result of the earlier append when these events are an exact retry of
 * it; `undefined` when none of their ids is stored.
 *
 * @throws {DuplicateEventError} when an id is stored, but not as this retry.
 */
export async function storedRetry(
  db: Db,
  store: PostgresStore,
  events: readonly Event[],
  ids: string[],
  callerIds: string[],
  expected: ExpectedVersion,
): Promise<AppendResult | undefined> {
  if (callerIds.length === 0) return undefined;
  const { aggregateType, aggregateId } = events[0];
  const stored = (await db`
    select ${eventColumns(db)} from ${table(db, store.tables.events)}
    where event_id = any(${arrayLiteral(callerIds)}::uuid[])
  `.values()).map(decodeEvent);
  if (stored.length === 0) return undefined;
  const retry = asRetry(stored, ids, aggregateType, aggregateId, expected);
  if (retry) {
    store.logger?.info("append was already stored: returning its result", {
      aggregateType,
      aggregateId,
    });
    return toResult(retry);
  }
  // Name the caller's first stored id: the rows come back in no particular order.
  const clash = ids.map((id) => stored.find((event) => event.eventId === id)).find(Boolean)!;
  throw new DuplicateEventError(
    clash.eventId,
    `an event already stored as ${clash.aggregateType} "${clash.aggregateId}" version ${clash.aggregateVersion}`,
  );
}

/**
 * The stored events if they are exactly this append, done before: every id
 * stored, for this aggregate, at consecutive versions in the same order,
 * starting where the expected version says.
 */
function asRetry(
  stored: PersistedEvent[],
  ids: string[],
  aggregateType: string,
  aggregateId: string,
  expected: ExpectedVersion,
): PersistedEvent[] | undefined {
  if (stored.length !== ids.length) return undefined;
  const byId = new Map(stored.map((event) => [event.eventId, event]));
  const ordered = ids.map((id) => byId.get(id));
  const first = ordered[0]?.aggregateVersion;
  if (first === undefined) return undefined;
  const expectedFirst = expected === "no_stream"
    ? 1n
    : typeof expected === "bigint"
    ? expected + 1n
    : first;
  if (first !== expectedFirst) return undefined;
  const matches = ordered.every((event, i) =>
    event !== undefined && event.aggregateType === aggregateType &&
    event.aggregateId === aggregateId &&
    event.aggregateVersion === first + BigInt(i)
  );
  return matches ? ordered as PersistedEvent[] : undefined;
}

/**
 * The ids the events will be stored under: the caller's, in lower case,
 * or new UUIDv7s. Only the caller's (`callerIds`) can be stored already.
 */
export function eventIds(events: readonly Event[]): { ids: string[]; callerIds: string[] } {
  const ids = events.map((event) => event.eventId?.toLowerCase() ?? uuidv7());
  const callerIds = events.flatMap((event, i) => event.eventId === undefined ? [] : [ids[i]]);
  return { ids, callerIds };
}

/** What the store assigned an appended event. */
export type Assigned = Pick<
  PersistedEvent,
  "globalPosition" | "transactionId" | "aggregateVersion" | "createdAt"
>;

/** An appended event as stored: the caller's fields, their defaults, and what was assigned. */
export function persistedEvent(event: Event, eventId: string, assigned: Assigned): PersistedEvent {
  return {
    ...assigned,
    aggregateType: event.aggregateType,
    aggregateId: event.aggregateId,
    eventId,
    eventType: event.eventType,
    eventVersion: event.eventVersion ?? 1,
    payload: event.payload,
    metadata: event.metadata ?? null,
    traceId: event.traceId ?? null,
    correlationId: event.correlationId ?? null,
    causationId: event.causationId ?? null,
  };
}

export function toResult(events: PersistedEvent[]): AppendResult {
  return {
    events,
    globalPositions: events.map((event) => event.globalPosition),
    fromVersion: events[0].aggregateVersion - 1n,
    toVersion: events[events.length - 1].aggregateVersion,
  };
}

/** The event id of a unique violation on the events' `event_id`, if that is what `error` is. */
export function duplicateIdOf(error: unknown, store: PostgresStore): string | undefined {
  const e = error as { code?: string; constraint_name?: string; detail?: string };
  if (
    e?.code !== "23505" || e.constraint_name !== derivedName(store.tables.events, "event_id_key")
  ) return undefined;
  return /\(event_id\)=\(([^)]+)\)/.exec(e.detail ?? "")?.[1] ?? "(unknown)";
}
