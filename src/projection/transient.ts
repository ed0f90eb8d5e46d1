/**
 * Which database errors are worth retrying: the connection went away, the
 * server is restarting or failing over, or PostgreSQL rolled the
 * transaction back to break a conflict. In every such case the batch's
 * transaction is gone (rolled back, or committed just before the
 * connection died), so running the batch again under fresh checkpoint
 * locks is exactly-once-safe.
 *
 * @module
 */

import type { Logger } from "../es/logger.ts";
import { DatabaseUnavailableError, ProjectionError } from "../es/errors.ts";
import { isConnectionLoss } from "../postgres/internal.ts";
import { countTransientRetry } from "../telemetry/retry.ts";
import { Alarm } from "./wakeup.ts";

/**
 * SQLSTATEs that roll the transaction back but leave the connection
 * usable: `40001` serialization_failure, `40P01` deadlock_detected.
 */
const CONFLICT_STATES: ReadonlySet<string> = new Set(["40001", "40P01"]);

function codeOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Whether `error` is a transient database error: a connection loss (see
 * {@linkcode isConnectionLoss}), or a serialization failure (`40001`) or
 * deadlock (`40P01`) that rolled the transaction back. Anything else (a
 * missing table, a constraint violation, a `ValidationError`, the caller's
 * own `sql.end()`) is not: retrying would fail the same way.
 *
 * Only the error itself is looked at, not its `cause`: a handler's error
 * is unwrapped by the processor, which alone knows it came from a handler.
 *
 * @example
 * ```ts
 * import { isTransientDatabaseError } from "./transient.ts";
 *
 * console.log(isTransientDatabaseError({ code: "40P01" })); // true
 * console.log(isTransientDatabaseError({ code: "CONNECTION_ENDED" })); // false
 * console.log(isTransientDatabaseError(new Error("boom"))); // false
 * ```
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && (CONFLICT_STATES.has(code) || isConnectionLoss(error));
}

/** What {@linkcode Backoff.recover} saw: whether the run should go on. */
export type Recovery = "retry" | "aborted";

/**
 * Backoff between retries of a processor's database work after transient
 * errors: `pollInterval`, doubling up to `maxPollInterval`, back to the
 * start after any success. Not woken by NOTIFY: appends are no reason to
 * hurry back to a database that is away; an abort ends the wait at once.
 *
 * With `giveUpAfter`, a streak of failures that has lasted that long
 * (from its first failure; any success ends the streak) ends in a
 * {@linkcode DatabaseUnavailableError} instead of another retry. The last
 * wait is cut short to try once more right at the deadline.
 */
export class Backoff {
  #attempt = 0;
  #retries = 0;
  #streakStart = 0;
  readonly #options: BackoffOptions;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** Transient errors retried so far, over every streak. */
  get retries(): number {
    return this.#retries;
  }

  /** A step succeeded: the next failure starts from `pollInterval` again. */
  reset(): void {
    this.#attempt = 0;
  }

  /**
   * Rethrows `error` unless it is transient and retries are enabled (a
   * handler's {@linkcode ProjectionError} counts when its cause is
   * transient); throws a {@linkcode DatabaseUnavailableError} once the
   * streak has lasted `giveUpAfter`; otherwise logs the retry once, waits,
   * and says whether to go on.
   */
  async recover(error: unknown, signal: AbortSignal | undefined): Promise<Recovery> {
    const { enabled, pollInterval, maxPollInterval, giveUpAfter, logger, projection } =
      this.#options;
    const underlying = error instanceof ProjectionError ? error.cause : error;
    if (!enabled || !isTransientDatabaseError(underlying)) throw error;
    const now = performance.now();
    if (this.#attempt === 0) this.#streakStart = now;
    this.#attempt++;
    const elapsedMs = Math.round(now - this.#streakStart);
    if (giveUpAfter !== undefined && elapsedMs >= giveUpAfter) {
      throw new DatabaseUnavailableError(projection, elapsedMs, this.#attempt, underlying);
    }
    let delayMs = Math.min(pollInterval * 2 ** Math.min(this.#attempt - 1, 30), maxPollInterval);
    if (giveUpAfter !== undefined) delayMs = Math.min(delayMs, giveUpAfter - elapsedMs);
    this.#retries++;
    // Telemetry: the retry, counted by projection and error (src/telemetry/retry.ts).
    const code = codeOf(underlying)!; // every transient error has one
    countTransientRetry(projection, code);
    logger?.error("projection processor database error, retrying", {
      projection,
      code,
      message: underlying instanceof Error ? underlying.message : String(underlying),
      attempt: this.#attempt,
      delayMs,
      elapsedMs,
      error,
    });
    // A fresh alarm: nothing but the timeout or the signal ends this sleep.
    return await new Alarm().sleep(delayMs, signal) === "aborted" ? "aborted" : "retry";
  }
}

/** The settings of a {@linkcode Backoff}. */
export interface BackoffOptions {
  /** `retryTransientErrors`: when false, every error is rethrown. */
  enabled: boolean;
  /** The first delay, in milliseconds. */
  pollInterval: number;
  /** The longest delay, in milliseconds. */
  maxPollInterval: number;
  /**
   * Milliseconds of failing without a success after which to give up;
   * `undefined` retries forever.
   */
  giveUpAfter: number | undefined;
  /** Where retries are logged. */
  logger: Logger | undefined;
  /** The projection's name, for the log and the error. */
  projection: string;
}
