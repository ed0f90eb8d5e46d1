/**
 * What a projection is: a name, an optional scope, and a handler that runs
 * in the same transaction as the checkpoint.
 *
 * @module
 */

import type { TransactionSql } from "postgres";
import type { PersistedEvent } from "../es/event.ts";
import { ValidationError } from "../es/errors.ts";
import { editDistance } from "../es/options.ts";
import { requireName, requireNewName, show } from "../es/validate.ts";
import type { ErrorPolicy } from "./policy.ts";

/**
 * A projection: it turns events into a read model, a side effect or other
 * events. The processor calls `handle` for each event of its scope, in
 * `(transactionId, globalPosition)` order per segment (so in version order
 * per aggregate), inside the transaction that also moves the checkpoint:
 * write the read model through `tx` and it is updated exactly once.
 *
 * @example A read model in the same database
 * ```ts
 * import type { Projection } from "@getpup/pupsourcing/projection";
 *
 * const userCount: Projection = {
 *   name: "user_count",
 *   aggregateTypes: ["User"],
 *   eventTypes: ["UserRegistered"],
 *   async handle(_event, tx) {
 *     await tx`update user_count set n = n + 1`;
 *   },
 * };
 * ```
 */
export interface Projection {
  /**
   * The projection's name: the key of its checkpoints. Renaming a
   * projection makes it start from the beginning of the log.
   */
  name: string;
  /** Only events of these aggregate types (filtered in SQL); default: all. */
  aggregateTypes?: readonly string[];
  /** Only events of these event types (filtered in SQL); default: all. */
  eventTypes?: readonly string[];
  /**
   * What to do when `handle` fails: retry, then stop, skip or park (see
   * {@linkcode ErrorPolicy}); default: the processor's `onError`, whose
   * own default stops the run at the first failure.
   */
  onError?: ErrorPolicy;
  /**
   * Handles one event. Use `tx` for every write that must happen exactly
   * once: it is the batch's transaction, committed together with the
   * checkpoint. A throw undoes this handler's writes, commits the events
   * of the batch before it, and hands the event to `onError`; by default
   * the processor stops with a `ProjectionError`, and the event is
   * delivered again on the next run.
   */
  // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
  handle(event: PersistedEvent, tx: TransactionSql<any>): void | Promise<void>;
  /**
   * Handles all of a batch's events in one call (bulk upserts), in log
   * order, in the batch's transaction; optional. When present the
   * processor calls it instead of `handle`. If it throws, the batch is
   * rolled back and run again one event at a time through `handle`, so the
   * error policy meets the very event that fails.
   */
  handleBatch?(
    events: readonly PersistedEvent[],
    // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
    tx: TransactionSql<any>,
  ): void | Promise<void>;
  /**
   * Clears the read model for a rebuild; optional. `resetProjection` (and
   * the `reset` and `rebuild` commands) call it in the transaction that
   * moves the checkpoints back, so the read model and the checkpoints
   * never disagree: write through `tx`.
   */
  // deno-lint-ignore no-explicit-any -- works with clients configured with any custom type map
  reset?(tx: TransactionSql<any>): void | Promise<void>;
}

/** The fields that narrow a projection's scope. */
const SCOPE_FIELDS = ["aggregateTypes", "eventTypes"] as const;

/** Checks a projection before it runs. */
export function validateProjection(projection: Projection): void {
  if (typeof projection !== "object" || projection === null) {
    throw new ValidationError("projection", "an object with a name and handle", show(projection));
  }
  requireNewName("projection.name", projection.name);
  if (typeof projection.handle !== "function") {
    throw new ValidationError("projection.handle", "a function", show(projection.handle));
  }
  for (const hook of ["handleBatch", "reset"] as const) {
    if (projection[hook] !== undefined && typeof projection[hook] !== "function") {
      throw new ValidationError(
        `projection.${hook}`,
        "a function or undefined",
        show(projection[hook]),
      );
    }
  }
  // A projection may carry fields of its own, but one a few letters from
  // a scope field (`aggregateType`) would silently widen the scope to all.
  for (const key of Object.keys(projection)) {
    const meant = SCOPE_FIELDS.find((field) =>
      key !== field && editDistance(key.toLowerCase(), field.toLowerCase()) <= 2
    );
    if (meant) {
      throw new ValidationError(
        `projection.${key}`,
        `"${meant}" (a misspelt scope field would take every event)`,
        `"${key}"`,
      );
    }
  }
  for (const field of SCOPE_FIELDS) {
    const names = projection[field];
    if (names === undefined) continue;
    if (!Array.isArray(names) || names.length === 0) {
      throw new ValidationError(
        `projection.${field}`,
        "a non-empty array of names (omit it to take all)",
        show(names),
      );
    }
    names.forEach((name, i) => requireName(`projection.${field}[${i}]`, name));
  }
}
