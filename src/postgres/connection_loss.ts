/**
 * Whether a database error means the connection is gone, for every layer
 * that retries on another connection: the projection's batches and the
 * store's coalesced appends.
 *
 * @module
 */

/**
 * Error codes that mean the connection is lost or cannot be made:
 * postgres.js's own (`CONNECTION_CLOSED` when the socket closed under a
 * query, `CONNECTION_DESTROYED` when it was torn down with queries
 * pending, `CONNECT_TIMEOUT`) and the socket and name-lookup errors it
 * passes through as they are. Deno, Node and Bun all give a refused port
 * as `ECONNREFUSED` (syscall `connect`) and a host name that does not
 * resolve as `ENOTFOUND` (syscall `getaddrinfo`; `EAI_AGAIN` when the
 * resolver itself is unreachable): a server whose DNS record or network
 * comes back is waited for like one that restarts. `CONNECTION_ENDED` is
 * not here: postgres.js raises it only after the caller's own `sql.end()`,
 * and no retry can bring that client back.
 */
const LOST_CONNECTION_CODES: ReadonlySet<string> = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * SQLSTATEs after which the session is over: `57P01` admin_shutdown
 * (`pg_terminate_backend`, a fast shutdown), `57P02` crash_shutdown,
 * `57P03` cannot_connect_now (starting up, or in recovery), `25P03`
 * idle_in_transaction_session_timeout (a group member's batch paused past
 * its lease). Class `08` (connection exceptions) is matched by prefix.
 */
const LOST_SESSION_STATES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03", "25P03"]);

/**
 * Whether `error` means the connection (or the session behind it) is gone:
 * a lost socket, class `08`, or `57P01`/`57P02`/`57P03`. A transaction on
 * that connection can run no further statement, not even a rollback.
 *
 * @example
 * ```ts
 * import { isConnectionLoss } from "./connection_loss.ts";
 *
 * console.log(isConnectionLoss({ code: "CONNECTION_CLOSED" })); // true
 * console.log(isConnectionLoss({ code: "ENOTFOUND" })); // true: a host name that did not resolve
 * console.log(isConnectionLoss({ code: "40001" })); // false: the connection is fine
 * ```
 */
export function isConnectionLoss(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return LOST_CONNECTION_CODES.has(code) || LOST_SESSION_STATES.has(code) ||
    /^08[0-9A-Z]{3}$/.test(code);
}
