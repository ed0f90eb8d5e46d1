/**
 * Every error the library throws on purpose. Each carries, as properties,
 * what a caller needs to react, and says in its message what was expected
 * and what was got.
 *
 * @module
 */

import type { ExpectedVersion, PersistedEvent } from "./event.ts";
import { show } from "./show.ts";

/**
 * The base class of every error the library throws on purpose.
 *
 * @example Tell library errors from others
 * ```ts
 * import { PupsourcingError } from "@getpup/pupsourcing";
 *
 * function isOurs(error: unknown): boolean {
 *   return error instanceof PupsourcingError;
 * }
 * ```
 */
export class PupsourcingError extends Error {
  /** Creates the error; `cause` keeps the underlying failure. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Bad input, found before any SQL ran: nothing was written.
 *
 * @example
 * ```ts
 * import { ValidationError } from "@getpup/pupsourcing";
 *
 * const error = new ValidationError("events[0].eventType", "a non-empty string", '""');
 * console.log(error.field); // "events[0].eventType"
 * ```
 */
export class ValidationError extends PupsourcingError {
  /** The path of the offending input, such as `events[2].payload`. */
  readonly field: string;
  /** What the field must be. */
  readonly expected: string;
  /** What it was. */
  readonly got: string;

  /** Creates the error for `field`, which must be `expected` but was `got`. */
  constructor(field: string, expected: string, got: string) {
    super(`Invalid ${field}: expected ${expected}, got ${got}`);
    this.field = field;
    this.expected = expected;
    this.got = got;
  }
}

/**
 * An append's expected version did not match the aggregate's version.
 * Nothing was written; reload the aggregate and decide again.
 *
 * @example Retry on conflict
 * ```ts
 * import { OptimisticConcurrencyError } from "@getpup/pupsourcing";
 *
 * function shouldRetry(error: unknown): boolean {
 *   return error instanceof OptimisticConcurrencyError;
 * }
 * ```
 */
export class OptimisticConcurrencyError extends PupsourcingError {
  /** The aggregate's type. */
  readonly aggregateType: string;
  /** The aggregate's id. */
  readonly aggregateId: string;
  /** What the caller expected. */
  readonly expectedVersion: ExpectedVersion;
  /** The aggregate's version when the append was tried (`0n`: no events). */
  readonly actualVersion: bigint;

  /** Creates the error for one aggregate. */
  constructor(
    aggregateType: string,
    aggregateId: string,
    expectedVersion: ExpectedVersion,
    actualVersion: bigint,
  ) {
    super(
      `Optimistic concurrency conflict on ${aggregateType} "${aggregateId}": ` +
        `expected version ${describeExpected(expectedVersion)}, ` +
        `got version ${show(actualVersion)}`,
    );
    this.aggregateType = aggregateType;
    this.aggregateId = aggregateId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/**
 * An event id that is already stored was used again, and not as an exact
 * retry of the append that stored it. Nothing was written.
 *
 * @example
 * ```ts
 * import { DuplicateEventError } from "@getpup/pupsourcing";
 *
 * function duplicateId(error: unknown): string | undefined {
 *   return error instanceof DuplicateEventError ? error.eventId : undefined;
 * }
 * ```
 */
export class DuplicateEventError extends PupsourcingError {
  /** The event id that is already stored. */
  readonly eventId: string;

  /** Creates the error for `eventId`; `detail` says where it is stored. */
  constructor(eventId: string, detail: string, options?: ErrorOptions) {
    super(
      `Duplicate event id ${eventId}: expected a new id or an exact retry ` +
        `of the append that stored it, got ${detail}`,
      options,
    );
    this.eventId = eventId;
  }
}

/**
 * The log, an aggregate or a cursor holds an order key (a transaction id)
 * that this database cannot have issued yet: the database was moved into
 * a new cluster (a dump and restore, a logical replication move), whose
 * transaction ids start lower than the history's. Appending, reading or
 * checkpointing on would file new events below the history and below the
 * checkpoints, or leave the history invisible, so the store refuses
 * before anything is written or delivered. The fix is one rebase of the
 * log: `rebaseLog(sql, { store })` from `@getpup/pupsourcing/postgres`,
 * or `deno task migrate --rebase`; every checkpoint stays valid.
 *
 * @example
 * ```ts
 * import { TransactionIdRegressionError } from "@getpup/pupsourcing";
 *
 * const error = new TransactionIdRegressionError(20_700n, 754n, "log");
 * console.log(error.storedTransactionId, error.found); // 20700n "log"
 * ```
 */
export class TransactionIdRegressionError extends PupsourcingError {
  /** The stored order key at or above what the database can have issued. */
  readonly storedTransactionId: bigint;
  /** The newest order key the database can have issued (its next one minus 1). */
  readonly databaseTransactionId: bigint;
  /** Where the key was found: the log's newest event, or a cursor or checkpoint. */
  readonly found: "log" | "cursor";

  /** Creates the error from the two keys and where the stored one was found. */
  constructor(
    storedTransactionId: bigint,
    databaseTransactionId: bigint,
    found: "log" | "cursor" = "cursor",
  ) {
    super(
      `${found === "log" ? "The log holds" : "A cursor or checkpoint holds"} transaction id ` +
        `${storedTransactionId}, ahead of the newest id this database has issued ` +
        `(${databaseTransactionId}): expected ids from this cluster. The database was moved ` +
        `into a new cluster (a dump and restore, a logical replication move) whose ` +
        `transaction ids start lower; nothing was appended, delivered or checkpointed. ` +
        `Rebase the log once, with the store's schema and table names: ` +
        `rebaseLog(sql, { store }) in code, or the command with --rebase: ` +
        `npx pupsourcing-migrate --rebase (Node, Bun), ` +
        `deno run -A jsr:@getpup/pupsourcing/migrate --rebase (Deno). ` +
        `Every checkpoint stays valid.`,
    );
    this.storedTransactionId = storedTransactionId;
    this.databaseTransactionId = databaseTransactionId;
    this.found = found;
  }
}

/**
 * A projection run in `"until_caught_up"` mode could not reach the
 * database for longer than its `catchUpTimeout`: every attempt in that
 * time failed with a transient error (a refused connection, an unknown
 * host name, a server starting up...). Nothing was applied twice; the
 * run stopped where its checkpoints are. `cause` is the last attempt's
 * error.
 *
 * @example
 * ```ts
 * import { DatabaseUnavailableError } from "@getpup/pupsourcing";
 *
 * const refused = new Error("connect ECONNREFUSED 127.0.0.1:5432");
 * const error = new DatabaseUnavailableError("user_emails", 30_412, 9, refused);
 * console.log(error.elapsedMs, error.attempts, error.cause === refused); // 30412 9 true
 * ```
 */
export class DatabaseUnavailableError extends PupsourcingError {
  /** The projection whose run gave up. */
  readonly projection: string;
  /** Milliseconds from the first failed attempt to giving up. */
  readonly elapsedMs: number;
  /** Failed attempts in that time. */
  readonly attempts: number;

  /** Creates the error; `cause` is the last attempt's error. */
  constructor(projection: string, elapsedMs: number, attempts: number, cause: unknown) {
    super(
      `Projection "${projection}" could not reach the database for ${elapsedMs} ms ` +
        `(${attempts} attempts): expected it within catchUpTimeout, got ${describeCause(cause)}`,
      { cause },
    );
    this.projection = projection;
    this.elapsedMs = elapsedMs;
    this.attempts = attempts;
  }
}

/**
 * Renders an expected version the way users write it (`3n`, `"no_stream"`),
 * as every message renders values.
 */
export function describeExpected(expected: ExpectedVersion): string {
  return show(expected);
}

/**
 * A projection's handler failed on an event. The batch it was in was
 * rolled back, so neither the handler's writes nor the checkpoint moved;
 * the event is delivered again when the projection runs again.
 *
 * @example
 * ```ts
 * import { ProjectionError } from "@getpup/pupsourcing";
 *
 * function where(error: unknown): string {
 *   return error instanceof ProjectionError
 *     ? `${error.projection} failed at position ${error.event.globalPosition}`
 *     : String(error);
 * }
 * ```
 */
export class ProjectionError extends PupsourcingError {
  /** The projection's name. */
  readonly projection: string;
  /** The event the handler failed on. */
  readonly event: PersistedEvent;

  /** Creates the error; `cause` is what the handler threw. */
  constructor(projection: string, event: PersistedEvent, cause: unknown) {
    super(
      `Projection "${projection}" failed on ${event.eventType} of ${event.aggregateType} ` +
        `"${event.aggregateId}" (global position ${event.globalPosition}, transaction ` +
        `${event.transactionId}): expected the handler to succeed, got ${describeCause(cause)}`,
      { cause },
    );
    this.projection = projection;
    this.event = event;
  }
}

function describeCause(cause: unknown): string {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
}

/**
 * A table of the store is missing: the database has not been migrated
 * (or the store is configured with another schema or table name than the
 * migration). Nothing was written. Run the migrations: `migrate(sql)` from
 * `@getpup/pupsourcing/postgres`, or `deno task migrate`.
 *
 * @example
 * ```ts
 * import { SchemaMissingError } from "@getpup/pupsourcing";
 *
 * const error = new SchemaMissingError("aggregate_heads", "es");
 * console.log(error.table, error.schema); // "aggregate_heads" "es"
 * ```
 */
export class SchemaMissingError extends PupsourcingError {
  /**
   * The missing table, as the store names it (`es.aggregate_heads`, or
   * unqualified), or one of the log's functions, named with `()`.
   */
  readonly table: string;
  /** The schema searched: the store's, or `undefined` for the `search_path`. */
  readonly schema: string | undefined;
  /**
   * `42P01`, PostgreSQL's undefined_table (`42883`, undefined_function, for
   * a function), which the underlying error (the `cause`) carries: code
   * that tested the raw error still works.
   */
  readonly code: "42P01" | "42883";

  /** Creates the error for `table`, looked for in `schema` (`undefined`: the search_path). */
  constructor(table: string, schema: string | undefined, options?: ErrorOptions) {
    super(
      `${table.endsWith("()") ? "Function" : "Table"} ${table} does not exist in ${
        schema === undefined ? "the search_path" : `schema "${schema}"`
      }: expected a database with the pupsourcing schema, got one without it. ` +
        `Run the migrations, with the same schema and table names as the store: ` +
        `migrate(sql, { store }) in code, or the command: npx pupsourcing-migrate ` +
        `(Node, Bun), deno run -A jsr:@getpup/pupsourcing/migrate (Deno), ` +
        `deno task migrate (in a clone of pupsourcing).`,
      options,
    );
    this.table = table;
    this.schema = schema;
    this.code = table.endsWith("()") ? "42883" : "42P01";
  }
}
