/**
 * The appends: to one aggregate, and to several. Each is one statement
 * and one round trip, whatever the number of events (the statements are
 * in append_sql.ts). An append moves the aggregate's head first, under the
 * head row's lock, and inserts the events only if the expected version
 * held, so a conflict takes no sequence value and writes nothing. An
 * append to several aggregates locks their heads in one order (type, then
 * id) whatever the caller's order, so two such appends over the same
 * aggregates queue instead of deadlocking; all of it is stored, or none.
 *
 * When a statement writes nothing, the append tells why: an exact retry
 * of an earlier append (which returns that append's result), a reused
 * event id, or a version that did not hold.
 *
 * No statement of an append asks whether an event id is stored already:
 * the unique constraint on `event_id` tells, and the stored events are
 * looked up only then. On a client that commits on its own, the violation
 * undoes the whole statement. In a caller's transaction it would abort
 * that transaction, so an append with caller-chosen ids there skips the
 * stored ids (`ON CONFLICT DO NOTHING`) and, when it skipped any, undoes
 * the rest of its own writes with a second statement: no savepoint, one
 * round trip while nothing is stored.
 *
 * @module
 */

import type { AppendResult, Event, ExpectedVersion } from "../es/event.ts";
import { DuplicateEventError, OptimisticConcurrencyError } from "../es/errors.ts";
import { describeExpected } from "../es/errors.ts";
import { fnv1a32 } from "../es/segment.ts";
import {
  allRetried,
  asRetry,
  describeStored,
  eventIds,
  persistedEvent,
  toResult,
} from "../es/stored.ts";
import type { ValidAppend } from "../es/validate.ts";
import {
  appendManyStatement,
  type AppendManyValues,
  type AppendShape,
  appendStatement,
  type AppendValues,
  eventColumn,
  type EventColumnName,
  eventValue,
  optionalColumns,
  refusedAggregate,
} from "./append_sql.ts";
import { arrayLiteral, type Db, table, toBigInt } from "./db.ts";
import { decodeEvent, EVENT_COLUMNS } from "./decode.ts";
import { inTransaction } from "./driver.ts";
import { regressionOf } from "./order.ts";
import {
  claimTransactionNotify,
  notifyInTransaction,
  wakeUpAfterCommit,
  type WakeUpContext,
} from "./notify.ts";
import { derivedName, quote, type ResolvedTables } from "./tables.ts";

/**
 * What an append needs of its store: its tables, its NOTIFY channel and
 * its logger. One value per store: statements are cached per store's
 * tables, wake-ups gathered per context.
 */
export interface AppendContext extends WakeUpContext {
  /** The store's validated table names. */
  readonly tables: ResolvedTables;
}

/** Appends validated events to one aggregate; see `PostgresStore.append`. */
export async function append(
  db: Db,
  store: AppendContext,
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
  const carriedNotify = store.notifyChannel !== undefined && inTransaction(db) &&
    claimTransactionNotify(db, store, aggregateType);
  // Only caller-chosen ids can be stored already.
  const skipStored = callerIds.length > 0 && inTransaction(db);
  let rows: unknown[][];
  try {
    rows = await insert(db, store, events, ids, expected, carriedNotify, skipStored);
  } catch (error) {
    const eventId = duplicateIdOf(error, store);
    if (!eventId) throw regressionOf(error) ?? error;
    // A concurrent append stored the id first. On a plain client the failed
    // statement is over and the store can look at what was stored: an exact
    // retry gets its result, as it would have a moment later. In a caller's
    // transaction the failure has aborted the transaction: nothing more runs.
    const retry = inTransaction(db)
      ? undefined
      : await storedRetry(db, store, events, ids, callerIds, expected).catch((lookup) => {
        // A client that autocommits but sits in a BEGIN of the caller's
        // cannot look: the failure aborted that transaction. Any other
        // failure of the lookup (a lost connection) comes through as itself.
        if (!abortedByRefusal(lookup)) throw lookup;
        return undefined;
      });
    if (retry) return retry;
    throw new DuplicateEventError(eventId, "a concurrent append that stored it first", {
      cause: error,
    });
  }
  if (rows.length === 0) {
    if (carriedNotify) await notifyInTransaction(db, store, aggregateType);
    return await explainRefusal(db, store, events, ids, callerIds, expected);
  }
  if (skipStored && (rows.length < events.length || rows[0][0] === null)) {
    await undoSkipped(db, store, events, rows);
    return await explainRefusal(db, store, events, ids, callerIds, expected);
  }
  if (!inTransaction(db)) wakeUpAfterCommit(db, store, aggregateType);

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
  store: AppendContext,
  events: readonly Event[],
  ids: string[],
  expected: ExpectedVersion,
  notify: boolean,
  skipStored: boolean,
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
    skipStored,
    single,
    optional: events.reduce((columns, event) => columns | optionalColumns(event), 0),
    notify,
  };
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
      case "channel":
        return store.notifyChannel ?? "";
      default:
        return single ? eventValue(name, events[0], ids[0]) : eventColumn(name, events, ids);
    }
  };
  const { strings, order } = appendStatement(store.tables, shape);
  return db(strings, ...order.map(value)).values() as Promise<unknown[][]>;
}

/**
 * Undoes, in the caller's transaction, what a statement that skipped
 * stored event ids wrote: the events it did insert, and the head's move
 * (a head it created is deleted). The head keeps the greater order key
 * the statement gave it: an append files its events at or above that key
 * anyway, and a key above the aggregate's newest event keeps the log
 * gap-free (see `movedHead` in append_sql.ts).
 */
async function undoSkipped(
  db: Db,
  store: AppendContext,
  events: readonly Event[],
  rows: unknown[][],
): Promise<void> {
  const { aggregateType, aggregateId } = events[0];
  const positions = rows.flatMap(([position]) => position === null ? [] : [toBigInt(position)]);
  const heads = quote(store.tables.aggregateHeads);
  const aggregate = "aggregate_type = $2 and aggregate_id = $3";
  // The range as well as the list: a list alone is planned as a scan of
  // the table when the plan is generic and the table young.
  const [first, last] = positions.length === 0 ? [null, null] : [
    String(positions.reduce((a, b) => a < b ? a : b)),
    String(positions.reduce((a, b) => a > b ? a : b)),
  ];
  await db.unsafe(
    `with gone as (delete from ${quote(store.tables.events)}
        where global_position between $5::int8 and $6::int8
          and global_position = any($1::text::int8[])),
      created as (delete from ${heads} where ${aggregate} and aggregate_version = $4::int8)
    update ${heads} set aggregate_version = aggregate_version - $4::int8
    where ${aggregate} and aggregate_version > $4::int8`,
    [
      arrayLiteral(positions.map(String)),
      aggregateType,
      aggregateId,
      String(events.length),
      first,
      last,
    ],
    ONE_SHOT,
  );
}

/**
 * The error paths' statements look rows up by key: sent unprepared, each
 * is planned for the table as it is, never kept as a generic plan made
 * while the table was young (see `head` in append_sql.ts).
 */
const ONE_SHOT = { prepare: false } as const;

/**
 * The statement wrote nothing: either the expected version did not hold,
 * or an event id is already stored. Tell which, and recognize an exact
 * retry of an earlier append, which returns that append's result.
 */
async function explainRefusal(
  db: Db,
  store: AppendContext,
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
async function concurrencyConflict(
  db: Db,
  store: AppendContext,
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
async function storedRetry(
  db: Db,
  store: AppendContext,
  events: readonly Event[],
  ids: string[],
  callerIds: string[],
  expected: ExpectedVersion,
): Promise<AppendResult | undefined> {
  if (callerIds.length === 0) return undefined;
  const { aggregateType, aggregateId } = events[0];
  // One index lookup per id: `event_id = any(...)` is planned as a scan of
  // the table when the plan is generic and the table young.
  const stored = (await db.unsafe(
    `select e.* from unnest($1::text::uuid[]) as k(id)
      cross join lateral (select ${EVENT_COLUMNS} from ${quote(store.tables.events)}
        where event_id = k.id limit 1) as e`,
    [arrayLiteral(callerIds)],
    ONE_SHOT,
  ).values()).map(decodeEvent);
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
    describeStored(clash),
  );
}

/** The event id of a unique violation on the events' `event_id`, if that is what `error` is. */
function duplicateIdOf(error: unknown, store: AppendContext): string | undefined {
  const e = error as { code?: string; constraint_name?: string; detail?: string };
  if (
    e?.code !== "23505" || e.constraint_name !== derivedName(store.tables.events, "event_id_key")
  ) return undefined;
  return /\(event_id\)=\(([^)]+)\)/.exec(e.detail ?? "")?.[1] ?? "(unknown)";
}

/** One validated append with the event ids it will store. */
interface Planned extends ValidAppend {
  ids: string[];
  /** The ids the caller chose, which may be stored already. */
  callerIds: string[];
}

/** Appends validated events to several aggregates; see `PostgresStore.appendMany`. */
export function appendMany(
  db: Db,
  store: AppendContext,
  appends: readonly ValidAppend[],
): Promise<AppendResult[]> {
  return storeMany(
    db,
    store,
    appends,
    {},
    (planned, locked, error) => explainManyRefusal(db, store, planned, locked, error),
  );
}

/**
 * Appends to several aggregates in one statement for the coalescing of
 * appends (see coalesce.ts), on a client that commits on its own. The
 * appends are to distinct aggregates, with distinct event ids, each set
 * (the store's or the caller's) so that a retry after a lost connection is
 * recognized. Resolves to the results, or, when one append refused the
 * statement (its expected version, or an event id stored already), to its
 * index: nothing of the statement was stored then. Any other failure is
 * thrown, a lock waited on for longer than `lockWaitMs` included (55P03,
 * unless the session's own `lock_timeout` bounds the wait).
 */
export function appendTogether(
  db: Db,
  store: AppendContext,
  appends: readonly ValidAppend[],
  lockWaitMs: number,
): Promise<AppendResult[] | number> {
  return storeMany<number>(db, store, appends, { lockWaitMs }, (planned, locked, error) => {
    const refused = refusedAggregate(error);
    if (refused !== undefined) return planned.indexOf(locked[refused - 1]);
    const duplicate = duplicateIdOf(error, store);
    const holder = planned.findIndex((p) => p.ids.includes(duplicate!));
    if (holder >= 0) return holder;
    throw regressionOf(error) ?? error;
  });
}

/**
 * The statement of {@linkcode appendMany}, its lock waits bounded by
 * `lockWaitMs` when given; a refusal goes to `refused`.
 */
async function storeMany<Refused>(
  db: Db,
  store: AppendContext,
  appends: readonly ValidAppend[],
  { lockWaitMs }: { lockWaitMs?: number },
  refused: (planned: Planned[], locked: Planned[], error: unknown) => Promise<Refused> | Refused,
): Promise<AppendResult[] | Refused> {
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
  const joined = inTransaction(db);
  const notifyTypes = store.notifyChannel !== undefined && joined
    ? types.filter((type) => claimTransactionNotify(db, store, type))
    : [];
  const values = statementValues(store, planned, locked, notifyTypes);
  const { strings, order } = appendManyStatement(store.tables, {
    optional: planned.reduce(
      (columns, p) => p.events.reduce((c, event) => c | optionalColumns(event), columns),
      0,
    ),
    notify: notifyTypes.length > 0,
    // The setting would outlive the statement in a caller's transaction.
    lockWaitMs: joined ? undefined : lockWaitMs,
  });
  // Only the values the statement names are computed.
  const parameters = order.map((name) => values[name]());
  const run = (on: Db) => on(strings, ...parameters).values() as Promise<unknown[][]>;
  let row: unknown[];
  try {
    [row] = joined ? await db.savepoint(run) : await run(db);
  } catch (error) {
    for (const type of notifyTypes) {
      await notifyInTransaction(db, store, type).catch(() => {});
    }
    return await refused(planned, locked, error);
  }
  if (!joined) { for (const type of types) wakeUpAfterCommit(db, store, type); }

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
  store: AppendContext,
  planned: Planned[],
  locked: Planned[],
  notifyTypes: string[],
): { [Name in keyof AppendManyValues]: () => AppendManyValues[Name] } {
  const heads = (pick: (p: Planned) => string) => arrayLiteral(locked.map(pick));
  const headOf = new Map(locked.map((p, k) => [p, k + 1]));
  // Numbers, one per event: no entry needs quoting.
  const numbers = (pick: (p: Planned, i: number) => number) =>
    `{${planned.flatMap((p) => p.events.map((_, i) => pick(p, i))).join(",")}}`;
  const events = planned.flatMap((p) => p.events);
  const ids = planned.flatMap((p) => p.ids);
  const event = (name: EventColumnName) => () => eventColumn(name, events, ids);
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
    aggregates: () => numbers((p) => headOf.get(p)!),
    offsets: () => numbers((_, i) => i + 1),
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
async function explainManyRefusal(
  db: Db,
  store: AppendContext,
  planned: Planned[],
  locked: Planned[],
  error: unknown,
): Promise<AppendResult[]> {
  const refused = refusedAggregate(error);
  const duplicate = duplicateIdOf(error, store);
  if (refused === undefined && duplicate === undefined) throw regressionOf(error) ?? error;
  const lookup = (p: Planned) => storedRetry(db, store, p.events, p.ids, p.callerIds, p.expected);
  // Every entry with caller-chosen ids is looked at first: a reused id is
  // a duplicate, never a conflict, even when a version was refused too. A
  // client that autocommits but sits in a BEGIN of the caller's cannot
  // look (the refusal aborted that transaction): the refusal is the
  // answer. Any other failure of the lookup (a lost connection) comes
  // through as itself.
  const retries = await Promise.all(planned.map(lookup)).catch((cause) => {
    throw abortedByRefusal(cause) ? error : cause;
  });
  const retried = allRetried(retries, { cause: error });
  if (retried) return retried;
  if (duplicate !== undefined) {
    throw new DuplicateEventError(duplicate, "a concurrent append that stored it first", {
      cause: error,
    });
  }
  const { events: [{ aggregateType, aggregateId }], expected } = locked[refused! - 1];
  return await concurrencyConflict(db, store, aggregateType, aggregateId, expected);
}

/**
 * Whether a lookup failed because the refused statement aborted the
 * transaction it ran in (`25P02` in_failed_sql_transaction): a caller's
 * BEGIN on a client that is no `sql.begin` transaction.
 */
function abortedByRefusal(error: unknown): boolean {
  return (error as { code?: string })?.code === "25P02";
}
