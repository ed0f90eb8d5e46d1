/**
 * An append, observed: a span (`pupsourcing.append`) whose context goes
 * into the events' metadata, and the append metrics (count by outcome,
 * events stored, duration). With no SDK registered the span does not
 * record, the metadata is left alone and the instruments are no-ops.
 *
 * @module
 */

import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Event } from "../es/event.ts";
import { withTraceContext } from "./context.ts";
import { instruments, SPANS, tracer } from "./instruments.ts";

/**
 * Runs an append of `appends` (one entry per aggregate) as `run(traced)`,
 * where `traced` are the same entries, their events carrying the append
 * span's trace context in their metadata when the span records.
 */
export async function observeAppend<A extends { events: readonly Event[] }, R>(
  appends: readonly A[],
  run: (traced: readonly A[]) => Promise<R>,
): Promise<R> {
  const started = performance.now();
  const count = appends.reduce((n, a) => n + a.events.length, 0);
  const types = [...new Set(appends.map((a) => a.events[0]?.aggregateType))];
  const attributes = {
    "pupsourcing.aggregate_type": types.length === 1 ? types[0] : "(several)",
  };
  const span = tracer().startSpan(SPANS.append, {
    kind: SpanKind.PRODUCER,
    attributes: {
      ...attributes,
      "pupsourcing.events": count,
      "pupsourcing.aggregates": appends.length,
    },
  });
  const traced = span.isRecording()
    ? appends.map((a) => ({ ...a, events: withTraceContext(a.events, span.spanContext()) }))
    : appends;
  const m = instruments();
  let outcome = "ok";
  try {
    const result = await context.with(trace.setSpan(context.active(), span), () => run(traced));
    m.eventsAppended.add(count, attributes);
    return result;
  } catch (error) {
    outcome = (error as Error)?.name ?? "Error";
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
    throw error;
  } finally {
    span.setAttribute("pupsourcing.outcome", outcome);
    span.end();
    m.appends.add(1, { ...attributes, "pupsourcing.outcome": outcome });
    m.appendDuration.record((performance.now() - started) / 1000, {
      ...attributes,
      "pupsourcing.outcome": outcome,
    });
  }
}

/** {@linkcode observeAppend} for the events of one aggregate. */
export function observeAppendOne<R>(
  events: readonly Event[],
  run: (traced: readonly Event[]) => Promise<R>,
): Promise<R> {
  return observeAppend([{ events }], ([traced]) => run(traced.events));
}
