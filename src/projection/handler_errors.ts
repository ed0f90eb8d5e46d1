/**
 * Which of a handler's errors its projection's error policy takes. Not a
 * transient database error (the processor retries those), and not the
 * database refusing the handler's SQL itself: a read model's table,
 * column, type or schema that does not exist, or a syntax error, fails
 * every event the same way, so skipping or parking the event that met it
 * would skip or park the whole log, one event after another, and report
 * a projection that caught up.
 *
 * @module
 */

import { ProjectionError } from "../es/errors.ts";
import { isTransientDatabaseError } from "./transient.ts";

/**
 * SQLSTATEs no event's data can cause: `42P01` undefined_table, `42703`
 * undefined_column, `42704` undefined_object (a type), `42601`
 * syntax_error, `3F000` invalid_schema_name. Not the rest of class 42:
 * `42804` (a parameter typed from one event's value), `42883` (a function
 * or operator looked up by those types) and `42501` (a row refused by
 * row-level security) can depend on the event, so they stay the policy's.
 */
const SCHEMA_STATES: ReadonlySet<string> = new Set(["42P01", "42703", "42704", "42601", "3F000"]);

/**
 * Whether `error`, or an error it wraps as `cause` (an ORM's own error
 * around PostgreSQL's), is PostgreSQL refusing a statement that no event's
 * data could make run: see {@linkcode SCHEMA_STATES}.
 *
 * @example
 * ```ts
 * import { isSchemaError } from "./handler_errors.ts";
 *
 * console.log(isSchemaError({ code: "42P01" })); // true: relation does not exist
 * console.log(isSchemaError(new Error("query failed", { cause: { code: "42703" } }))); // true
 * console.log(isSchemaError({ code: "42804" })); // false: may be this event's value
 * ```
 */
export function isSchemaError(error: unknown): boolean {
  for (let depth = 0; depth < 4 && typeof error === "object" && error !== null; depth++) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && SCHEMA_STATES.has(code)) return true;
    error = (error as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Whether `error` is a handler's failure for its error policy to take:
 * a {@linkcode ProjectionError} whose cause is neither a transient
 * database error (retried by the processor) nor a schema error (the run
 * stops, see {@linkcode isSchemaError}).
 *
 * @example
 * ```ts
 * import { ProjectionError } from "../es/errors.ts";
 * import type { PersistedEvent } from "../es/event.ts";
 * import { isPolicyFailure } from "./handler_errors.ts";
 *
 * const event = { eventType: "Placed", aggregateType: "Order", aggregateId: "o-1" } as PersistedEvent;
 * const failed = (cause: unknown) => new ProjectionError("totals", event, cause);
 * console.log(isPolicyFailure(failed(new Error("no amount")))); // true
 * console.log(isPolicyFailure(failed({ code: "42P01" }))); // false
 * ```
 */
export function isPolicyFailure(error: unknown): error is ProjectionError {
  return error instanceof ProjectionError && !isTransientDatabaseError(error.cause) &&
    !isSchemaError(error.cause);
}
