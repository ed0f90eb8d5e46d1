/**
 * OpenTelemetry: with the SDK's in-memory exporters registered, appends
 * and batches report their metrics and spans under the documented names
 * and attributes, the append's trace context travels in the events'
 * metadata, and the batch span links back to the append span of the
 * request; with no SDK, nothing is added to the events.
 */

import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Context,
  context,
  type ContextManager,
  metrics,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { OptimisticConcurrencyError } from "../src/es/mod.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { appendContextOf, observeProjectionLag } from "../src/telemetry/mod.ts";
import { after, before, describe, it } from "./_bounds.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";
import { caughtUp } from "./_projection.ts";

/** The active context through AsyncLocalStorage, as the SDK's own context manager does. */
class StorageContextManager implements ContextManager {
  #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

describe("OpenTelemetry", () => {
  let db: TestDb;
  before(async () => {
    db = await setupDatabase();
  });
  after(async () => {
    trace.disable();
    metrics.disable();
    context.disable();
    await db?.close();
  });

  it("without an SDK the events are appended as given", async () => {
    const store = await db.freshStore();
    const { events: [stored] } = await store.append(db.sql, [event("quiet")]);
    assert.equal(stored.metadata, null);
  });

  it("reports appends and batches: names, attributes, and the batch span linked to the request's append", async () => {
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(spans)],
    });
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    context.setGlobalContextManager(new StorageContextManager());
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
    try {
      const store = await db.freshStore();
      const app = trace.getTracer("app");
      const { result, request } = await app.startActiveSpan("request", async (span) => {
        try {
          const result = await store.append(db.sql, [
            event("order-1", { metadata: { tenant: "t1" } }),
            event("order-1"),
          ], { expectedVersion: "no_stream" });
          return { result, request: span.spanContext() };
        } finally {
          span.end();
        }
      });
      await assert.rejects(
        store.append(db.sql, [event("order-1")], { expectedVersion: 0n }),
        OptimisticConcurrencyError,
      );

      const byName = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
      const [append, conflict] = byName("pupsourcing.append");
      assert.equal(append.parentSpanContext?.spanId, request.spanId, "a child of the request");
      assert.equal(append.spanContext().traceId, request.traceId);
      assert.deepEqual(append.attributes, {
        "pupsourcing.aggregate_type": "Order",
        "pupsourcing.events": 2,
        "pupsourcing.aggregates": 1,
        "pupsourcing.outcome": "ok",
      });
      assert.equal(conflict.status.code, SpanStatusCode.ERROR);
      assert.equal(conflict.attributes["pupsourcing.outcome"], "OptimisticConcurrencyError");

      // The append's context is in each event's metadata, next to the caller's own.
      const traceparent = `00-${request.traceId}-${append.spanContext().spanId}-01`;
      assert.deepEqual(result.events.map((e) => e.metadata), [
        { tenant: "t1", traceparent },
        { traceparent },
      ]);
      const [stored] = (await store.readAggregateStream(db.sql, "Order", "order-1")).events;
      assert.equal(appendContextOf(stored.metadata)?.spanId, append.spanContext().spanId);

      const handled: string[] = [];
      const processor = new ProjectionProcessor(db.sql, store, { segments: 2 });
      await caughtUp(processor.run({
        name: "orders",
        handle: (e) => void handled.push(e.eventId),
      }, { mode: "until_caught_up" }));
      assert.equal(handled.length, 2);
      const batches = byName("pupsourcing.batch").filter((s) =>
        s.attributes["pupsourcing.events"] === 2
      );
      assert.equal(batches.length, 1);
      const [batch] = batches as ReadableSpan[];
      assert.equal(batch.attributes["pupsourcing.projection"], "orders");
      assert.deepEqual(
        batch.links.map((l) => [l.context.traceId, l.context.spanId]),
        [[request.traceId, append.spanContext().spanId]],
        "the batch links to the append of the request",
      );

      const lag = observeProjectionLag(db.sql, store);
      await store.append(db.sql, [event("order-2")]);
      await reader.forceFlush();
      const exported = exporter.getMetrics().at(-1)!.scopeMetrics
        .filter((s) => s.scope.name === "pupsourcing")
        .flatMap((s) => s.metrics);
      lag.stop();
      const metric = (name: string): MetricData => {
        const found = exported.find((m) => m.descriptor.name === name);
        assert.ok(found, `metric ${name} (got ${exported.map((m) => m.descriptor.name)})`);
        return found;
      };
      const points = (name: string) =>
        metric(name).dataPoints.map((p) => [p.attributes, p.value] as const);
      assert.deepEqual(points("pupsourcing.appends"), [
        [{ "pupsourcing.aggregate_type": "Order", "pupsourcing.outcome": "ok" }, 2],
        [
          {
            "pupsourcing.aggregate_type": "Order",
            "pupsourcing.outcome": "OptimisticConcurrencyError",
          },
          1,
        ],
      ]);
      assert.deepEqual(points("pupsourcing.events.appended"), [
        [{ "pupsourcing.aggregate_type": "Order" }, 3],
      ]);
      assert.equal(metric("pupsourcing.append.duration").descriptor.unit, "s");
      assert.deepEqual(points("pupsourcing.events.processed"), [
        [{ "pupsourcing.projection": "orders" }, 2],
      ]);
      assert.equal(metric("pupsourcing.batch.duration").descriptor.unit, "s");
      assert.deepEqual(points("pupsourcing.projection.lag.events"), [
        [{ "pupsourcing.projection": "orders" }, 1],
      ]);
      const [[, seconds]] = points("pupsourcing.projection.lag.seconds");
      assert.ok(typeof seconds === "number" && seconds >= 0 && seconds < 60, String(seconds));
    } finally {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    }
  });

  it("counts the transient database errors a processor waits out, by projection and error", async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    metrics.disable(); // the API keeps the first provider registered otherwise
    assert.ok(metrics.setGlobalMeterProvider(meterProvider));
    try {
      const store = await db.freshStore();
      await store.append(db.sql, [event("flaky-1"), event("flaky-1")]);
      let cut = false;
      const handled: string[] = [];
      const processor = new ProjectionProcessor(db.sql, store, { pollInterval: 5 });
      const outcome = await caughtUp(processor.run({
        name: "flaky",
        async handle(e, tx) {
          // The batch's own connection dies under it once: a real connection loss.
          if (!cut) {
            cut = true;
            await tx`select pg_terminate_backend(pg_backend_pid())`;
          }
          handled.push(e.eventId);
        },
      }, { mode: "until_caught_up" }));
      assert.equal(outcome.retries, 1);
      assert.equal(handled.length, 2, "the batch ran again in full after the retry");
      await reader.forceFlush();
      const retries = exporter.getMetrics().at(-1)!.scopeMetrics
        .filter((s) => s.scope.name === "pupsourcing")
        .flatMap((s) => s.metrics)
        .find((m) => m.descriptor.name === "pupsourcing.transient.retries");
      assert.ok(retries, "the pupsourcing.transient.retries metric");
      const points = retries.dataPoints.map((p) => [p.attributes, p.value] as const);
      assert.equal(points.length, 1, JSON.stringify(points));
      const [[attributes, value]] = points;
      assert.equal(value, 1);
      assert.equal(attributes["pupsourcing.projection"], "flaky");
      assert.match(
        String(attributes["error.type"]),
        /^(57P01|CONNECTION_CLOSED|CONNECTION_ENDED|ECONNRESET)$/,
      );
    } finally {
      await meterProvider.shutdown();
    }
  });
});
