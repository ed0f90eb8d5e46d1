/**
 * OpenTelemetry for pupsourcing, through `@opentelemetry/api` only: a
 * no-op until the application registers an SDK (the NodeSDK, or a meter
 * and tracer provider of its own), then:
 *
 * - metrics: `pupsourcing.appends` (by `pupsourcing.outcome`),
 *   `pupsourcing.events.appended`, `pupsourcing.append.duration` (s),
 *   `pupsourcing.events.processed`, `pupsourcing.batch.duration` (s),
 *   `pupsourcing.batch.failures` (by `error.type`),
 *   `pupsourcing.handler.retries` and `pupsourcing.events.parked` (by
 *   `pupsourcing.projection`), `pupsourcing.transient.retries` (by
 *   `pupsourcing.projection` and `error.type`: the database errors a
 *   processor waited out), and with {@linkcode observeProjectionLag},
 *   `pupsourcing.projection.lag.events` and `.lag.seconds`;
 * - traces: a `pupsourcing.append` span per append (a child of the
 *   caller's active span), whose context each event carries in its
 *   metadata as `traceparent`, and a `pupsourcing.batch` span per
 *   projection batch, linked to the append spans of its events: a
 *   handler's work links back to the request that caused it.
 *
 * Appends and batches report on their own; nothing to call.
 *
 * @example See the lag next to the other metrics
 * ```ts ignore
 * import { metrics } from "@opentelemetry/api";
 * import { observeProjectionLag } from "@getpup/pupsourcing/telemetry";
 *
 * metrics.setGlobalMeterProvider(meterProvider); // your SDK's
 * observeProjectionLag(sql, store);
 * ```
 *
 * @module
 */

export { appendContextOf, type TraceContext, TRACEPARENT } from "./context.ts";
export { METRICS, SCOPE, SPANS } from "./instruments.ts";
export { observeProjectionLag } from "./lag.ts";
