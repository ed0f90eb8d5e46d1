/**
 * Replaying parked events: the handler runs again on each, in its
 * aggregate's order, in a transaction that marks it resolved.
 *
 * @module
 */

import type { Sql } from "postgres";
import { ProjectionError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import { checkOptions } from "../es/options.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import {
  beginGuarded,
  isConnectionLoss,
  missingTable,
  readAtPositions,
  table,
} from "../postgres/internal.ts";
import { startHandler } from "./handler.ts";
import { errorText } from "./parked.ts";
import { checkFilter, filterSql, type ParkedFilter } from "./parked_admin.ts";
import { resolvePolicy } from "./policy.ts";
import { type Projection, validateProjection } from "./projection.ts";
import { isPolicyFailure } from "./handler_errors.ts";

/**
 * Options of {@linkcode replayParked}: which events, and where to log.
 *
 * @example
 * ```ts
 * import type { ReplayOptions } from "@getpup/pupsourcing/projection";
 *
 * const options: ReplayOptions = { aggregate: { type: "Account", id: "acc-7" }, logger: console };
 * ```
 */
export interface ReplayOptions extends ParkedFilter {
  /** Where failures are logged; default: nowhere. */
  logger?: Logger;
}

/**
 * What {@linkcode replayParked} did.
 *
 * @example
 * ```ts
 * import type { ReplayOutcome } from "@getpup/pupsourcing/projection";
 *
 * const done = (outcome: ReplayOutcome) => outcome.failed === 0;
 * ```
 */
export interface ReplayOutcome {
  /** Events applied and marked resolved. */
  resolved: number;
  /** Events whose handler failed again: still parked, attempts and error updated. */
  failed: number;
}

/** A handler failure during a replay (not a transient database error). */
class ReplayFailed extends Error {
  constructor(readonly error: ProjectionError) {
    super(error.message);
  }
}

/**
 * Runs `projection`'s handler again on its parked events (all of them, or
 * those of `options.aggregate` / `options.eventIds`), each in its own
 * transaction that marks it resolved: exactly once, whatever crashes.
 *
 * Each aggregate's events are replayed in log order, and an event whose
 * handler fails again stops its aggregate: it stays parked with its
 * attempts and error updated, and its aggregate's later events wait
 * behind it (unless the projection parks with `park: "event"`). With
 * `eventIds`, an aggregate stops at its first parked event not listed.
 * Events parked while the replay runs are replayed too, when they come
 * before it finishes their aggregate; run it again to catch any later.
 *
 * A transient database error rejects (nothing is half applied); run it
 * again.
 *
 * @throws {ValidationError} on a bad projection or options, before any SQL.
 *
 * @example Replay after fixing the handler
 * ```ts ignore
 * const { resolved, failed } = await replayParked(sql, store, fixedProjection);
 * console.log(`${resolved} replayed, ${failed} still failing`);
 * ```
 */
export async function replayParked(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  store: PostgresStore,
  projection: Projection,
  options?: ReplayOptions,
): Promise<ReplayOutcome> {
  validateProjection(projection);
  const policy = resolvePolicy("projection.onError", projection.onError);
  const checked = checkOptions("options", options, ["aggregate", "eventIds", "logger"]);
  const { aggregate, eventIds } = checkFilter({
    aggregate: checked.aggregate,
    eventIds: checked.eventIds,
  });
  const { tables } = store;
  const parked = table(sql, tables.parkedEvents);
  const name = projection.name;
  const listed = eventIds && new Set(eventIds.map((id) => id.toLowerCase()));
  const outcome: ReplayOutcome = { resolved: 0, failed: 0 };

  // The groups that replay in order: aggregates, or single events.
  const groups = await sql`
    select distinct aggregate_type, aggregate_id,
      ${policy.keepOrder ? sql`null::bigint` : sql`global_position`} as global_position
    from ${parked}
    where projection_name = ${name} and status = 'parked' ${filterSql(sql, aggregate, eventIds)}
  `.catch((error) => {
    throw missingTable(error, tables);
  });
  for (const group of groups) {
    const only = group.global_position === null
      ? sql``
      : sql`and global_position = ${group.global_position}`;
    for (;;) {
      let position: string | undefined;
      try {
        position = await beginGuarded(sql, async (tx, track) => {
          // The aggregate's first waiting event, locked against another replay.
          const [row] = await tx`
            select global_position, event_id from ${table(tx, tables.parkedEvents)}
            where projection_name = ${name} and status = 'parked'
              and aggregate_type = ${group.aggregate_type} and aggregate_id = ${group.aggregate_id}
              ${only}
            order by transaction_id, global_position
            limit 1
            for update
          `;
          if (!row || (listed && !listed.has(String(row.event_id).toLowerCase()))) return undefined;
          const [event] = await readAtPositions(tx, tables, [BigInt(row.global_position)]);
          try {
            await track(
              Promise.resolve().then(() =>
                startHandler(projection, event, tx, policy.handlerTimeoutMs, checked.logger)
              ),
            );
          } catch (error) {
            // A schema error rejects the replay: every event would fail alike.
            if (isPolicyFailure(error)) throw new ReplayFailed(error);
            throw error;
          }
          await tx`
            update ${table(tx, tables.parkedEvents)}
            set status = 'resolved', attempts = attempts + 1, updated_at = now()
            where projection_name = ${name} and global_position = ${row.global_position}
          `;
          return String(row.global_position);
        }, (error) => isConnectionLoss(error instanceof ProjectionError ? error.cause : error));
      } catch (error) {
        if (!(error instanceof ReplayFailed)) throw missingTable(error, tables);
        // Still parked: one more attempt, and the error of this one.
        const { cause, event } = error.error;
        await sql`
          update ${parked}
          set attempts = attempts + 1, error = ${errorText(cause)}, updated_at = now()
          where projection_name = ${name} and global_position = ${String(event.globalPosition)}
            and status = 'parked'
        `;
        outcome.failed++;
        break;
      }
      if (position === undefined) break;
      outcome.resolved++;
    }
  }
  return outcome;
}
