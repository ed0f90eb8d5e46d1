/**
 * The projections' lag as observable gauges: read from the database each
 * time the SDK collects metrics.
 *
 * @module
 */

import type { BatchObservableCallback } from "@opentelemetry/api";
import type { Sql } from "postgres";
import type { PostgresStore } from "../postgres/mod.ts";
import { projectionStatus, type StatusOptions } from "../projection/mod.ts";
import { instruments, METRICS } from "./instruments.ts";

/**
 * Registers the gauges `pupsourcing.projection.lag.events` and
 * `pupsourcing.projection.lag.seconds` (attribute
 * `pupsourcing.projection`), observed by one `projectionStatus` query per
 * metrics collection, on the meter provider registered now: call it after
 * registering the SDK. `stop()` unregisters them.
 *
 * A collection that cannot reach the database observes nothing (and the
 * SDK's next collection tries again).
 *
 * @example Export the lag with the application's metrics
 * ```ts ignore
 * import { observeProjectionLag } from "@getpup/pupsourcing/telemetry";
 *
 * // after metrics.setGlobalMeterProvider(...) or the NodeSDK's start()
 * const lag = observeProjectionLag(sql, store);
 * // ... on shutdown:
 * lag.stop();
 * ```
 */
export function observeProjectionLag(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  store: PostgresStore,
  options?: StatusOptions,
): { stop(): void } {
  const { meter } = instruments();
  const events = meter.createObservableGauge(METRICS.lagEvents, {
    description: "Committed events a projection has not applied yet",
  });
  const seconds = meter.createObservableGauge(METRICS.lagSeconds, {
    description: "Age of the oldest event a projection has not applied yet",
    unit: "s",
  });
  const observe: BatchObservableCallback = async (result) => {
    const report = await projectionStatus(sql, store, options).catch(() => []);
    for (const status of report) {
      const attributes = { "pupsourcing.projection": status.name };
      result.observe(events, Number(status.lagEvents), attributes);
      result.observe(seconds, status.lagSeconds, attributes);
    }
  };
  meter.addBatchObservableCallback(observe, [events, seconds]);
  return { stop: () => meter.removeBatchObservableCallback(observe, [events, seconds]) };
}
