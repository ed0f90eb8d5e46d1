/**
 * A processor's retry after a transient database error, counted
 * (`pupsourcing.transient.retries`): an operator sees a flaky network or
 * a failover as a rate of retries, before any projection falls behind.
 * The processor decides what is transient; this only counts what it
 * retries. A no-op with no SDK registered.
 *
 * @module
 */

import { instruments } from "./instruments.ts";

/**
 * Counts one retry of `projection`'s database work after an error of
 * `errorType` (its SQLSTATE or driver code, such as `40001` or
 * `CONNECTION_CLOSED`).
 */
export function countTransientRetry(projection: string, errorType: string): void {
  instruments().transientRetries.add(1, {
    "pupsourcing.projection": projection,
    "error.type": errorType,
  });
}
