/**
 * The optional logger. `console` fits it as is.
 *
 * @module
 */

/**
 * Structured context for a log line.
 *
 * @example
 * ```ts
 * import type { LogFields } from "@getpup/pupsourcing";
 *
 * const fields: LogFields = { projection: "user_emails", processed: 100 };
 * ```
 */
export type LogFields = Record<string, unknown>;

/**
 * Where the library writes what it does. Pass none and it does no logging
 * work at all.
 *
 * @example Use the console
 * ```ts
 * import type { Logger } from "@getpup/pupsourcing";
 *
 * const logger: Logger = console;
 * logger.info("events appended", { count: 2 });
 * ```
 */
export interface Logger {
  /** Detail useful while debugging. */
  debug(message: string, fields?: LogFields): void;
  /** Things that happened. */
  info(message: string, fields?: LogFields): void;
  /** Failures. */
  error(message: string, fields?: LogFields): void;
}
