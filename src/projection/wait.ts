/**
 * Read-your-writes: `waitForProjections` resolves once projections have
 * applied an append, so an API can answer from its read model right after
 * the command that appended.
 *
 * @module
 */

import type { AppendResult, Cursor } from "../es/event.ts";
import { PupsourcingError, ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { maxCursor } from "../es/cursor.ts";
import { requireName, show, validateCursor } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import { arrayLiteral, belowHorizon, type Db, missingTable, table } from "../postgres/internal.ts";

/**
 * The wait of {@linkcode waitForProjections} ran out of time: `behind`
 * names the projections that had not applied the append (a projection
 * with no checkpoints yet counts as behind).
 *
 * @example
 * ```ts ignore
 * try {
 *   await waitForProjections(sql, store, { after: result, timeoutMs: 2_000 });
 * } catch (error) {
 *   if (error instanceof ProjectionWaitTimeoutError) console.log(error.behind);
 * }
 * ```
 */
export class ProjectionWaitTimeoutError extends PupsourcingError {
  /**
   * Creates the error.
   *
   * @param behind The projections that had not got there.
   * @param after The cursor waited for.
   * @param timeoutMs The time waited.
   */
  constructor(
    readonly behind: readonly string[],
    readonly after: Cursor,
    readonly timeoutMs: number,
  ) {
    super(
      `projections ${behind.map((n) => `"${n}"`).join(", ")} had not applied the events up to ` +
        `(${after.transactionId}, ${after.globalPosition}) after ${timeoutMs} ms: check that ` +
        "their workers run (`pupsourcing status`) and what holds the horizon (`pupsourcing horizon`)",
    );
  }
}

/**
 * Options of {@linkcode waitForProjections}.
 *
 * @example
 * ```ts
 * import type { WaitOptions } from "@getpup/pupsourcing/projection";
 *
 * const options: WaitOptions = {
 *   after: { transactionId: 812n, globalPosition: 40n },
 *   projections: ["user_emails"],
 *   timeoutMs: 5_000,
 * };
 * ```
 */
export interface WaitOptions {
  /**
   * What must be applied: an append's result (or several, as `appendMany`
   * returns), or a log cursor: every event at or before it.
   */
  after: AppendResult | readonly AppendResult[] | Cursor;
  /** The projections to wait for; default: every projection with checkpoints. */
  projections?: readonly string[];
  /** Give up after this long with {@linkcode ProjectionWaitTimeoutError}; default 10 000. */
  timeoutMs?: number;
  /** Stops the wait; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Resolves once every segment of the projections has applied every event
 * up to `after`: the projections' read models (written through the
 * batch's `tx`) then show the append, and everything before it, except
 * events their error policy skipped or parked (the checkpoint moves past
 * those too; `listParked` shows them).
 *
 * Exact, also while transactions commit out of order: a checkpoint is a
 * `(transactionId, globalPosition)` pair and only passes events below the
 * safe horizon, so a checkpoint at or past the append's own pair means no
 * older transaction can still add an event before it; and the wait also
 * requires the append's key to be below the horizon now. A waited-for
 * append still open in the caller's own transaction can never be applied:
 * commit first.
 *
 * @throws {ValidationError} on bad options, before any SQL.
 * @throws {ProjectionWaitTimeoutError} after `timeoutMs`.
 *
 * @example Answer from the read model right after the command
 * ```ts ignore
 * import { waitForProjections } from "@getpup/pupsourcing/projection";
 *
 * const result = await store.append(sql, events, { expectedVersion: "no_stream" });
 * await waitForProjections(sql, store, { after: result, projections: ["user_emails"] });
 * const [row] = await sql`select email from user_emails where user_id = ${id}`;
 * ```
 */
export async function waitForProjections(
  db: Db,
  store: PostgresStore,
  options: WaitOptions,
): Promise<void> {
  const checked = checkOptions("options", options, [
    "after",
    "projections",
    "timeoutMs",
    "signal",
  ]);
  const after = cursorAfter(checked.after);
  const names = checked.projections;
  if (names !== undefined) {
    if (!Array.isArray(names) || names.length === 0) {
      throw new ValidationError(
        "options.projections",
        "a non-empty array of names (omit it for every projection)",
        show(names),
      );
    }
    names.forEach((name, i) => requireName(`options.projections[${i}]`, name));
  }
  const timeoutMs = checked.timeoutMs ?? 10_000;
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
    throw new ValidationError(
      "options.timeoutMs",
      "a number of milliseconds >= 0",
      show(timeoutMs),
    );
  }
  const { signal } = checked;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ValidationError("options.signal", "an AbortSignal", show(signal));
  }
  const deadline = performance.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    signal?.throwIfAborted();
    const behind = await projectionsBehind(db, store, after, names).catch((error) => {
      throw missingTable(error, store.tables);
    });
    if (behind.length === 0 && await belowHorizon(db, store.tables, after)) return;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new ProjectionWaitTimeoutError(behind.length ? behind : names ?? [], after, timeoutMs);
    }
    await sleep(Math.min(delay, left), signal);
    delay = Math.min(delay * 2, 100);
  }
}

/** The cursor of the last event of `after`. */
function cursorAfter(after: WaitOptions["after"] | undefined): Cursor {
  const results = Array.isArray(after) ? after : [after];
  const cursors: Cursor[] = [];
  for (const result of results as unknown[]) {
    const r = result as Partial<AppendResult & Cursor> | null;
    if (typeof r?.transactionId === "bigint" && typeof r.globalPosition === "bigint") {
      cursors.push(validateCursor(r, "options.after"));
    } else if (Array.isArray(r?.globalPositions) && r.globalPositions.length > 0) {
      // An append's result: its events' cursors.
      const { events: appended = [] } = r as AppendResult;
      for (const e of appended) cursors.push(e);
    } else {
      throw new ValidationError(
        "options.after",
        "an append's result, several, or a cursor { transactionId, globalPosition } (bigints)",
        show(after),
      );
    }
  }
  if (cursors.length === 0) {
    throw new ValidationError("options.after", "at least one append's result", show(after));
  }
  const last = cursors.reduce(maxCursor);
  return { transactionId: last.transactionId, globalPosition: last.globalPosition };
}

/** The projections (of `names`, or all) with a segment before `after`, or no segments at all. */
async function projectionsBehind(
  db: Db,
  store: PostgresStore,
  after: Cursor,
  names: readonly string[] | undefined,
): Promise<string[]> {
  const tx = String(after.transactionId);
  const position = String(after.globalPosition);
  const rows = await db`
    select n.name from (
      ${
    names === undefined
      ? db`select distinct projection_name as name from ${table(db, store.tables.checkpoints)}`
      : db`select unnest(${arrayLiteral(names)}::text[]) as name`
  }
    ) as n
    where not exists (select from ${table(db, store.tables.checkpoints)} c
                      where c.projection_name = n.name)
      or exists (select from ${table(db, store.tables.checkpoints)} c
                 where c.projection_name = n.name
                   and (c.transaction_id, c.global_position) < (${tx}::xid8, ${position}::bigint))
    order by 1
  `.values();
  return rows.map(([name]) => String(name));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
    };
    const stop = () => {
      done();
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener("abort", stop, { once: true });
  });
}
