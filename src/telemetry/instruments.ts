/**
 * The library's meter and tracer, through `@opentelemetry/api` only: a
 * no-op until the application registers an SDK. Metric instruments are
 * made once per registered meter provider (the API's metrics have no
 * proxy: instruments made before an SDK is registered would stay no-ops),
 * so an SDK registered after the first append still gets every metric.
 *
 * @module
 */

import {
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  trace,
  type Tracer,
} from "@opentelemetry/api";

/**
 * The instrumentation scope: the name metrics and spans are reported under.
 *
 * @example Keep only the library's metrics in a view
 * ```ts
 * import { SCOPE } from "@getpup/pupsourcing/telemetry";
 *
 * console.log(SCOPE); // pupsourcing
 * ```
 */
export const SCOPE = "pupsourcing";

/**
 * Every metric the library reports, by name.
 *
 * @example
 * ```ts
 * import { METRICS } from "@getpup/pupsourcing/telemetry";
 *
 * console.log(METRICS.lagSeconds); // pupsourcing.projection.lag.seconds
 * ```
 */
export const METRICS = {
  appends: "pupsourcing.appends",
  eventsAppended: "pupsourcing.events.appended",
  appendDuration: "pupsourcing.append.duration",
  eventsProcessed: "pupsourcing.events.processed",
  batchDuration: "pupsourcing.batch.duration",
  batchFailures: "pupsourcing.batch.failures",
  handlerRetries: "pupsourcing.handler.retries",
  eventsParked: "pupsourcing.events.parked",
  transientRetries: "pupsourcing.transient.retries",
  lagEvents: "pupsourcing.projection.lag.events",
  lagSeconds: "pupsourcing.projection.lag.seconds",
} as const;

/**
 * Every span the library starts, by name.
 *
 * @example
 * ```ts
 * import { SPANS } from "@getpup/pupsourcing/telemetry";
 *
 * console.log(SPANS.batch); // pupsourcing.batch
 * ```
 */
export const SPANS = {
  append: "pupsourcing.append",
  batch: "pupsourcing.batch",
} as const;

/** The instruments of one meter. */
export interface Instruments {
  meter: Meter;
  appends: Counter;
  eventsAppended: Counter;
  appendDuration: Histogram;
  eventsProcessed: Counter;
  batchDuration: Histogram;
  batchFailures: Counter;
  handlerRetries: Counter;
  eventsParked: Counter;
  transientRetries: Counter;
}

let cached: { provider: MeterProvider; instruments: Instruments } | undefined;

/** The instruments of the meter provider registered now (no-ops when none is). */
export function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (cached?.provider !== provider) {
    const meter = provider.getMeter(SCOPE);
    cached = {
      provider,
      instruments: {
        meter,
        appends: meter.createCounter(METRICS.appends, {
          description: "Appends (one per append or appendMany call), by outcome",
        }),
        eventsAppended: meter.createCounter(METRICS.eventsAppended, {
          description: "Events stored by appends",
        }),
        appendDuration: meter.createHistogram(METRICS.appendDuration, {
          description: "How long an append took, its round trip included",
          unit: "s",
        }),
        eventsProcessed: meter.createCounter(METRICS.eventsProcessed, {
          description: "Events a projection handled and committed",
        }),
        batchDuration: meter.createHistogram(METRICS.batchDuration, {
          description: "How long a projection's batch took, its transaction included",
          unit: "s",
        }),
        batchFailures: meter.createCounter(METRICS.batchFailures, {
          description: "Batches that failed (a transient database error is retried by the " +
            "processor; anything else stops it), by error type",
        }),
        handlerRetries: meter.createCounter(METRICS.handlerRetries, {
          description: "Handler failures the error policy retries",
        }),
        eventsParked: meter.createCounter(METRICS.eventsParked, {
          description: "Events a projection parked (failed, or held behind a parked one)",
        }),
        transientRetries: meter.createCounter(METRICS.transientRetries, {
          description: "Transient database errors (a lost connection, a serialization " +
            "failure, a deadlock) a processor waited out to try again, by error type",
        }),
      },
    };
  }
  return cached.instruments;
}

/**
 * The library's tracer, from the provider registered now. Asked for on
 * every span, not kept: a proxy tracer kept from the start holds on to the
 * first provider it met, even after `trace.disable()`.
 */
export function tracer(): Tracer {
  return trace.getTracer(SCOPE);
}
