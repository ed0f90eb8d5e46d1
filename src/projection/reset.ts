/**
 * `resetProjection`: moves a projection's checkpoints back to the start of
 * the log (a rebuild) or on to its tip (skip the history), with the
 * projection's own `reset` hook in the same transaction.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Cursor } from "../es/event.ts";
import { PupsourcingError, ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { requireName, show } from "../es/validate.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import { missingTable, requireClient, table, tipColumns, tipOf } from "../postgres/internal.ts";
import { type Projection, validateProjection } from "./projection.ts";
import { STATIC_OWNER } from "./leases.ts";
import { knownList } from "./status.ts";

/**
 * A reset refused because workers of the projection are at work: a batch
 * holds its checkpoint rows, or a worker holds a live lease on a segment.
 * Stop the workers first, or pass `force: true`.
 *
 * @example
 * ```ts ignore
 * try {
 *   await resetProjection(sql, store, "balances");
 * } catch (error) {
 *   if (error instanceof ProjectionBusyError) console.log(error.projection, error.holders);
 * }
 * ```
 */
export class ProjectionBusyError extends PupsourcingError {
  /**
   * Creates the error.
   *
   * @param projection The projection's name.
   * @param holders What holds it: a running batch, or the workers holding leases.
   */
  constructor(readonly projection: string, readonly holders: readonly string[]) {
    super(
      `projection "${projection}" is running (${holders.join("; ")}): stop its workers ` +
        "first, or force the reset (--force, { force: true })",
    );
  }
}

/**
 * Options of {@linkcode resetProjection}.
 *
 * @example
 * ```ts
 * import type { ResetOptions } from "@getpup/pupsourcing/projection";
 *
 * const options: ResetOptions = { to: "now" };
 * ```
 */
export interface ResetOptions {
  /**
   * `"start"` (default): back to the start of the log, to apply every
   * event again (the projection's parked events go too: they will be met
   * again). `"now"`: on to the newest readable event, skipping the history.
   */
  to?: "start" | "now";
  /**
   * Reset even while a worker holds the projection: wait for a running
   * batch to commit instead of refusing, and ignore live leases.
   */
  force?: boolean;
}

/**
 * What {@linkcode resetProjection} did.
 *
 * @example
 * ```ts
 * import type { ResetOutcome } from "@getpup/pupsourcing/projection";
 *
 * const show = (r: ResetOutcome) => `${r.segments} segments at ${r.checkpoint.globalPosition}`;
 * ```
 */
export interface ResetOutcome {
  /** Segments reset. */
  segments: number;
  /** Where every segment's checkpoint now is. */
  checkpoint: Cursor;
  /** Parked-event rows removed (a reset to the start only). */
  parkedRemoved: number;
  /** Whether the projection's `reset` hook ran. */
  hookRan: boolean;
}

/**
 * Moves every checkpoint of `projection` to the start of the log or to
 * its tip, in one transaction that also runs the projection's `reset`
 * hook (given a projection, not a name), so the read model is cleared
 * exactly when its checkpoints go back. Workers pick the new checkpoints
 * up at their next batch.
 *
 * Refuses with {@linkcode ProjectionBusyError}, changing nothing, while a
 * batch holds the projection's checkpoint rows or a worker holds a live
 * lease, unless `force`. (A worker between batches holds nothing: it
 * simply continues from the reset checkpoints, which is safe.)
 *
 * @throws {ValidationError} on bad options, or a projection that has no
 * checkpoints (never ran; the message lists those that did).
 * @throws {ProjectionBusyError} while workers hold it, without `force`.
 *
 * @example Rebuild a read model from scratch
 * ```ts ignore
 * import { resetProjection } from "@getpup/pupsourcing/projection";
 *
 * const userEmails = {
 *   name: "user_emails",
 *   handle: async (event, tx) => {},
 *   reset: async (tx) => void await tx`truncate user_emails`,
 * };
 * await resetProjection(sql, store, userEmails, { to: "start" });
 * ```
 */
export async function resetProjection(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  store: PostgresStore,
  projection: string | Projection,
  options?: ResetOptions,
): Promise<ResetOutcome> {
  requireClient("sql", sql, "the reset runs in a transaction of its own");
  const checked = checkOptions("options", options, ["to", "force"]);
  const to = checked.to ?? "start";
  if (to !== "start" && to !== "now") {
    throw new ValidationError("options.to", '"start" or "now"', show(to));
  }
  if (checked.force !== undefined && typeof checked.force !== "boolean") {
    throw new ValidationError("options.force", "a boolean", show(checked.force));
  }
  let name: string;
  if (typeof projection === "string") name = requireName("projection", projection);
  else {
    validateProjection(projection);
    name = projection.name;
  }
  const { tables } = store;
  const checkpoints = table(sql, tables.checkpoints);
  try {
    return await sql.begin(async (tx) => {
      const wait = checked.force ? tx`` : tx`nowait`;
      const rows = await tx`
        select segment, owner_id, lease_expires_at > now() as leased
        from ${checkpoints} where projection_name = ${name}
        order by segment for update ${wait}
      `.catch((error) => {
        if ((error as { code?: string }).code === "55P03") {
          throw new ProjectionBusyError(name, ["a batch holds its checkpoint rows"]);
        }
        throw error;
      });
      if (rows.length === 0) {
        throw new ValidationError(
          "projection",
          `the name of a projection that has run (${await knownList(tx, store)})`,
          JSON.stringify(name),
        );
      }
      const owners = [...new Set(rows.filter((r) => r.leased).map((r) => String(r.owner_id)))];
      if (owners.length > 0 && !checked.force) {
        throw new ProjectionBusyError(name, owners.map((owner) => `worker ${owner} holds a lease`));
      }
      let checkpoint: Cursor = { transactionId: 0n, globalPosition: 0n };
      if (to === "now") {
        const [[tipTx, tipPosition]] = await tx`select ${tipColumns(tx, tables)}`.values();
        checkpoint = tipOf(tipTx, tipPosition) ?? checkpoint;
      }
      // A reset is no static worker's move: a static mark left on the rows
      // would keep group members out for a lease time.
      await tx`
        update ${checkpoints}
        set transaction_id = ${String(checkpoint.transactionId)}::xid8,
          global_position = ${String(checkpoint.globalPosition)}::bigint, updated_at = now(),
          owner_id = nullif(owner_id, ${STATIC_OWNER})
        where projection_name = ${name}
      `;
      const removed = to === "start"
        ? await tx`delete from ${table(tx, tables.parkedEvents)} where projection_name = ${name}`
        : undefined;
      const hook = typeof projection === "string" ? undefined : projection.reset;
      if (hook) await hook.call(projection, tx);
      return {
        segments: rows.length,
        checkpoint,
        parkedRemoved: removed?.count ?? 0,
        hookRan: hook !== undefined,
      };
    });
  } catch (error) {
    throw missingTable(error, tables);
  }
}
