/**
 * `deno task bench --otel`: registers an OpenTelemetry SDK before the
 * workloads run (a meter provider with a reader, a tracer provider with a
 * batching span processor whose exporter drops the spans), so a run shows
 * what recording the library's metrics and spans costs. Compare its W5
 * with a run without the flag.
 *
 * @module
 */

import { metrics, trace } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

/** Registers the SDK; the returned function shuts it down. */
export function registerOtel(): () => Promise<void> {
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 10_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [
      new BatchSpanProcessor({
        export: (_spans, done) => done({ code: 0 }),
        shutdown: () => Promise.resolve(),
      }),
    ],
  });
  metrics.setGlobalMeterProvider(meterProvider);
  trace.setGlobalTracerProvider(tracerProvider);
  return async () => {
    await meterProvider.shutdown();
    await tracerProvider.shutdown();
  };
}
