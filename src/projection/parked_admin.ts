/**
 * Looking at parked events and discarding them: `listParked` and
 * `discardParked`. Replaying them is in `./replay.ts`.
 *
 * @module
 */

import type { PersistedEvent } from "../es/event.ts";
import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { requireName, show } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import {
  arrayLiteral,
  type Db,
  missingTable,
  readAtPositions,
  table,
} from "../postgres/internal.ts";
import type { ParkedReason, ParkedStatus } from "./parked.ts";

/**
 * A row of the parked-events table, with its event read from the log.
 *
 * @example Print what is parked
 * ```ts
 * import type { ParkedEvent } from "@getpup/pupsourcing/projection";
 *
 * function line(p: ParkedEvent): string {
 *   return `${p.projection} ${p.event.aggregateId} v${p.event.aggregateVersion}: ${p.error}`;
 * }
 * ```
 */
export interface ParkedEvent {
  /** The projection that parked (or skipped) it. */
  projection: string;
  /** The event, as the log holds it. */
  event: PersistedEvent;
  /** `parked` (waiting), `skipped`, `resolved` (replayed) or `discarded`. */
  status: ParkedStatus;
  /** `failed`: its handler failed; `held`: it waits behind a parked event of its aggregate. */
  reason: ParkedReason;
  /** The handler's last error, as text; `null` for an event held behind another. */
  error: string | null;
  /** Handler runs that failed on it (a replay that fails adds one). */
  attempts: number;
  /** When it was parked or skipped. */
  parkedAt: Date;
  /** When its row last changed. */
  updatedAt: Date;
}

/**
 * Which parked events an operation takes: an aggregate's, or those with
 * the given event ids (both: those of the aggregate with these ids).
 *
 * @example
 * ```ts
 * import type { ParkedFilter } from "@getpup/pupsourcing/projection";
 *
 * const filter: ParkedFilter = { aggregate: { type: "Account", id: "acc-7" } };
 * ```
 */
export interface ParkedFilter {
  /** Only this aggregate's events. */
  aggregate?: { type: string; id: string };
  /** Only the events with these ids. */
  eventIds?: readonly string[];
}

/**
 * Options of {@linkcode listParked}.
 *
 * @example
 * ```ts
 * import type { ListParkedOptions } from "@getpup/pupsourcing/projection";
 *
 * const options: ListParkedOptions = { projection: "balances", status: "all" };
 * ```
 */
export interface ListParkedOptions {
  /** Only this projection's rows; default: every projection's. */
  projection?: string;
  /** Only rows with this status; default `"parked"`. `"all"` takes every row. */
  status?: ParkedStatus | "all";
}

const STATUSES: readonly (ParkedStatus | "all")[] = [
  "parked",
  "skipped",
  "resolved",
  "discarded",
  "all",
];

/**
 * The parked events (by default those still waiting, of every
 * projection), in log order, each with its event, error, attempts and
 * times.
 *
 * @throws {ValidationError} on bad options, before any SQL.
 *
 * @example
 * ```ts ignore
 * for (const parked of await listParked(sql, store, { projection: "balances" })) {
 *   console.log(parked.event.aggregateId, parked.reason, parked.attempts, parked.error);
 * }
 * ```
 */
export async function listParked(
  db: Db,
  store: PostgresStore,
  options?: ListParkedOptions,
): Promise<ParkedEvent[]> {
  const checked = checkOptions("options", options, ["projection", "status"]);
  if (checked.projection !== undefined) requireName("options.projection", checked.projection);
  const status = checked.status ?? "parked";
  if (!STATUSES.includes(status)) {
    throw new ValidationError(
      "options.status",
      STATUSES.map((s) => `"${s}"`).join(", "),
      show(status),
    );
  }
  const { tables } = store;
  try {
    const rows = await db`
      select projection_name, global_position, status, reason, error, attempts, parked_at, updated_at
      from ${table(db, tables.parkedEvents)}
      where true
        ${checked.projection === undefined ? db`` : db`and projection_name = ${checked.projection}`}
        ${status === "all" ? db`` : db`and status = ${status}`}
      order by transaction_id, global_position, projection_name
    `;
    const events = await readAtPositions(
      db,
      tables,
      [...new Set(rows.map((row) => BigInt(row.global_position)))],
    );
    const byPosition = new Map(events.map((event) => [event.globalPosition, event]));
    return rows.map((row) => ({
      projection: row.projection_name,
      event: byPosition.get(BigInt(row.global_position))!,
      status: row.status,
      reason: row.reason,
      error: row.error,
      attempts: row.attempts,
      parkedAt: new Date(row.parked_at),
      updatedAt: new Date(row.updated_at),
    }));
  } catch (error) {
    throw missingTable(error, tables);
  }
}

/**
 * Marks a projection's parked events as discarded (kept for audit, never
 * applied): all of them, or those of `filter`. Events held behind a
 * discarded one stay parked: replay or discard them too.
 *
 * @returns how many were discarded.
 * @throws {ValidationError} on a bad name or filter, before any SQL.
 *
 * @example Give up on one aggregate's parked events
 * ```ts ignore
 * await discardParked(sql, store, "balances", { aggregate: { type: "Account", id: "acc-7" } });
 * ```
 */
export async function discardParked(
  db: Db,
  store: PostgresStore,
  projection: string,
  filter?: ParkedFilter,
): Promise<number> {
  requireName("projection", projection);
  const { aggregate, eventIds } = checkFilter(filter);
  const { tables } = store;
  const rows = await db`
    update ${table(db, tables.parkedEvents)} set status = 'discarded', updated_at = now()
    where projection_name = ${projection} and status = 'parked' ${
    filterSql(db, aggregate, eventIds)
  }
    returning 1
  `.catch((error) => {
    throw missingTable(error, tables);
  });
  return rows.length;
}

/** Validates a {@linkcode ParkedFilter}. */
export function checkFilter(filter: ParkedFilter | undefined): ParkedFilter {
  const checked = checkOptions("filter", filter, ["aggregate", "eventIds"]);
  if (checked.aggregate !== undefined) {
    const aggregate = checkOptions("filter.aggregate", checked.aggregate, ["type", "id"]);
    requireName("filter.aggregate.type", aggregate.type);
    requireName("filter.aggregate.id", aggregate.id);
  }
  if (checked.eventIds !== undefined) {
    const ids = checked.eventIds;
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => !UUID.test(id))) {
      throw new ValidationError("filter.eventIds", "a non-empty array of event UUIDs", show(ids));
    }
  }
  return checked;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A filter as `and ...` fragments on the parked table. */
export function filterSql(
  db: Db,
  aggregate: ParkedFilter["aggregate"],
  eventIds: ParkedFilter["eventIds"],
) {
  const byAggregate = aggregate
    ? db`and aggregate_type = ${aggregate.type} and aggregate_id = ${aggregate.id}`
    : db``;
  const byId = eventIds ? db`and event_id = any(${arrayLiteral(eventIds)}::uuid[])` : db``;
  return db`${byAggregate} ${byId}`;
}
