/**
 * The append to several aggregates: one statement, one round trip, all of
 * it or nothing. Heads are locked in one order (type, then id) whatever
 * the caller's order, so two such appends over the same aggregates queue
 * instead of deadlocking.
 *
 * @module
 */

import type { AppendResult, ExpectedVersion } from "../es/event.ts";
import { DuplicateEventError } from "../es/errors.ts";
import { fnv1a32 } from "../es/segment.ts";
import type { ValidAppend } from "../es/validate.ts";
import {
  concurrencyConflict,
  duplicateIdOf,
  eventIds,
  persistedEvent,
  storedRetry,
  toResult,
} from "./append.ts";
import { appendManyStatement, type AppendManyValues, refusedAggregate } from "./append_many_sql.ts";
import { type EventColumnName, eventValue, setsOptional } from "./append_sql.ts";
import { arrayLiteral, type Db } from "./db.ts";
import {
  autocommits,
  claimTransactionNotify,
  notifyInTransaction,
  wakeUpAfterCommit,
} from "./notify.ts";
import type { PostgresStore } from "./store.ts";

/** One validated append with the event ids it will store. */
interface Planned extends ValidAppend {
  ids: string[];
  /** The ids the caller chose, which may be stored already. */
  callerIds: string[];
}

/** Appends to several aggregates; see {@linkcode PostgresStore.appendMany}. */
export async function appendMany(
  db: Db,
  store: PostgresStore,
  appends: readonly ValidAppend[],
): Promise<AppendResult[]> {
  const planned: Planned[] = appends.map((append) => ({ ...append, ...eventIds(append.events) }));
  const locked = lockOrder(planned);
  const types = [...new Set(planned.map((p) => p.events[0].aggregateType))];
  store.logger?.debug("append to several aggregates starting", {
    aggregates: planned.length,
    count: planned.reduce((n, p) => n + p.events.length, 0),
  });
  // In a caller's transaction the statement runs in a savepoint: a refusal
  // is an error, and only the savepoint's rollback keeps the transaction
  // usable (and lets the store look at why it was refused).
  const inTransaction = !autocommits(db);
  const notifyTypes = store.notifyChannel !== undefined && inTransaction
    ? types.filter((type) => claimTransactionNotify(db, store, type))
    : [];
  const values = statementValues(store, planned, locked, notifyTypes);
  const { strings, order } = appendManyStatement(store, {
    checkIds: planned.some((p) => p.callerIds.length > 0),
    optional: planned.some((p) => p.events.some(setsOptional)),
    notify: notifyTypes.length > 0,
  });
  // Only the values the statement names are computed.
  const parameters = order.map((name) => values[name]());
  const run = (on: Db) => on(strings, ...parameters).values() as Promise<unknown[][]>;
  let row: unknown[];
  try {
    [row] = "savepoint" in db ? await db.savepoint(run) : await run(db);
  } catch (error) {
    for (const type of notifyTypes) {
      await notifyInTransaction(db, store, type).catch(() => {});
    }
    return await explainRefusal(db, store, planned, locked, error);
  }
  if (!inTransaction) { for (const type of types) wakeUpAfterCommit(db, store, type); }

  const [positions, fromVersions, transactionIds, now] = row as [string, string, string, Date];
  const positionOf = bigints(positions).values();
  const headOf = new Map(locked.map((p, k) => [p, k]));
  const from = bigints(fromVersions);
  const transaction = bigints(transactionIds);
  const results = planned.map((p) => {
    const k = headOf.get(p)!;
    return toResult(p.events.map((event, i) =>
      persistedEvent(event, p.ids[i], {
        globalPosition: positionOf.next().value!,
        transactionId: transaction[k],
        aggregateVersion: from[k] + BigInt(i + 1),
        createdAt: new Date(event.createdAt ?? now),
      })
    ));
  });
  store.logger?.info("events appended to several aggregates", {
    aggregates: results.length,
    count: results.reduce((n, r) => n + r.events.length, 0),
  });
  return results;
}

/** An `int8[]` or `xid8[]` in its text form, `{1,2,3}`, as bigints. */
function bigints(array: string): bigint[] {
  return array.slice(1, -1).split(",").map(BigInt);
}

/** The appends sorted by aggregate type, then id: the order heads are locked in. */
function lockOrder(planned: Planned[]): Planned[] {
  const key = (p: Planned) => p.events[0];
  return [...planned].sort((a, b) =>
    key(a).aggregateType < key(b).aggregateType
      ? -1
      : key(a).aggregateType > key(b).aggregateType
      ? 1
      : key(a).aggregateId < key(b).aggregateId
      ? -1
      : 1
  );
}

function expectedCode(expected: ExpectedVersion): string {
  if (expected === "any") return "-1";
  if (expected === "stream_exists") return "-2";
  return expected === "no_stream" ? "0" : String(expected);
}

/**
 * The statement's values: the heads in lock order, the events in the
 * caller's order (which is the order of their positions), each pointing at
 * its head.
 */
function statementValues(
  store: PostgresStore,
  planned: Planned[],
  locked: Planned[],
  notifyTypes: string[],
): { [Name in keyof AppendManyValues]: () => AppendManyValues[Name] } {
  const heads = (pick: (p: Planned) => string) => arrayLiteral(locked.map(pick));
  const headOf = new Map(locked.map((p, k) => [p, k + 1]));
  const column = (pick: (p: Planned, i: number) => string | null) =>
    arrayLiteral(planned.flatMap((p) => p.events.map((_, i) => pick(p, i))));
  const event = (name: EventColumnName) => () =>
    column((p, i) => eventValue(name, p.events[i], p.ids[i]));
  return {
    eventId: event("eventId"),
    eventType: event("eventType"),
    payload: event("payload"),
    eventVersion: event("eventVersion"),
    metadata: event("metadata"),
    traceId: event("traceId"),
    correlationId: event("correlationId"),
    causationId: event("causationId"),
    createdAt: event("createdAt"),
    aggregateTypes: () => heads((p) => p.events[0].aggregateType),
    aggregateIds: () => heads((p) => p.events[0].aggregateId),
    counts: () => heads((p) => String(p.events.length)),
    expected: () => heads((p) => expectedCode(p.expected)),
    hashes: () => heads((p) => String(fnv1a32(p.events[0].aggregateId))),
    aggregates: () => column((p) => String(headOf.get(p))),
    offsets: () => column((_, i) => String(i + 1)),
    known: () => arrayLiteral(planned.flatMap((p) => p.callerIds)),
    channel: () => store.notifyChannel ?? "",
    notifyTypes: () => arrayLiteral(notifyTypes),
  };
}

/**
 * The statement failed and wrote nothing. An exact retry of an earlier
 * append to the same aggregates returns that append's results; another
 * stored event id is a duplicate; a refused expected version is a
 * conflict. Any other failure is rethrown as it is.
 */
async function explainRefusal(
  db: Db,
  store: PostgresStore,
  planned: Planned[],
  locked: Planned[],
  error: unknown,
): Promise<AppendResult[]> {
  const refused = refusedAggregate(error);
  const duplicate = duplicateIdOf(error, store);
  if (refused === undefined && duplicate === undefined) throw error;
  const lookup = (p: Planned) => storedRetry(db, store, p.events, p.ids, p.callerIds, p.expected);
  // Every entry with caller-chosen ids is looked at first: a reused id is
  // a duplicate, never a conflict, even when a version was refused too.
  const retries = await Promise.all(planned.map(lookup)).catch((cause) => {
    if (cause instanceof DuplicateEventError) throw cause;
    throw error;
  });
  if (retries.every((retry) => retry !== undefined)) return retries as AppendResult[];
  const partial = retries.find((retry) => retry !== undefined);
  if (partial) {
    const [stored] = partial.events;
    throw new DuplicateEventError(
      stored.eventId,
      `an event already stored as ${stored.aggregateType} "${stored.aggregateId}" version ` +
        `${stored.aggregateVersion}, while other entries of this append were not stored: ` +
        "it is no retry of an earlier append",
      { cause: error },
    );
  }
  if (duplicate !== undefined) {
    throw new DuplicateEventError(duplicate, "a concurrent append that stored it first", {
      cause: error,
    });
  }
  const { events: [{ aggregateType, aggregateId }], expected } = locked[refused! - 1];
  return await concurrencyConflict(db, store, aggregateType, aggregateId, expected);
}
