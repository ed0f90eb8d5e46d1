/**
 * Which handler errors are no poison event: PostgreSQL refusing the
 * handler's SQL itself. A read model's table that does not exist, a
 * column, function or schema that does not, a syntax error or a missing
 * privilege fails every event the same way, so skipping or parking the
 * event that met it would skip or park the whole log, one event after
 * another, and report a projection that caught up.
 *
 * @module
 */

/**
 * Whether `error` is PostgreSQL's answer to a statement that cannot run
 * against this database whatever the event: SQLSTATE class `42` (syntax
 * error or access rule violation: `42P01` undefined_table, `42703`
 * undefined_column, `42883` undefined_function, `42601` syntax_error,
 * `42501` insufficient_privilege, ...) or `3F000` invalid_schema_name.
 * The processor stops the run on such an error instead of applying the
 * projection's error policy to it.
 *
 * @example
 * ```ts
 * import { isSchemaError } from "./schema_errors.ts";
 *
 * console.log(isSchemaError({ code: "42P01" })); // true: relation does not exist
 * console.log(isSchemaError({ code: "23505" })); // false: this event's data
 * console.log(isSchemaError(new Error("boom"))); // false
 * ```
 */
export function isSchemaError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && code.length === 5 &&
    (code.startsWith("42") || code === "3F000");
}
