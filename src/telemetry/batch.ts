/**
 * A projection's batch, observed: a span (`pupsourcing.batch`) linked to
 * the append spans of the events it handled (their metadata's
 * `traceparent`), and the batch metrics (events processed, duration,
 * handler retries, parked events, failures). With no SDK registered the
 * span does not record and nothing is collected.
 *
 * @module
 */

import { type Link, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { PersistedEvent } from "../es/event.ts";
import { appendContextOf } from "./context.ts";
import { instruments, SPANS, tracer } from "./instruments.ts";

/** What the observer needs of a projection: its name and handlers. */
export interface ObservedProjection {
  name: string;
  // deno-lint-ignore no-explicit-any -- the handlers' transaction, whatever its type
  handle(event: PersistedEvent, tx: any): unknown;
  // deno-lint-ignore no-explicit-any -- as above
  handleBatch?(events: readonly PersistedEvent[], tx: any): unknown;
}

/** What the observer reads of a batch's outcome. */
export interface ObservedOutcome {
  processed: number;
  retried: number;
  skipped: number;
  parked: number;
}

/** The most links one batch span carries (a batch may hold thousands of events). */
const MAX_LINKS = 128;

/**
 * Runs one batch of `projection` as `run(observed)`: `observed` is the
 * projection itself, or, while the span records, a projection whose
 * handlers also note the events they get, for the span's links.
 */
export async function observeBatch<P extends ObservedProjection, O extends ObservedOutcome>(
  projection: P,
  run: (observed: P) => Promise<O>,
): Promise<O> {
  const started = performance.now();
  const attributes = { "pupsourcing.projection": projection.name };
  const span = tracer().startSpan(SPANS.batch, { kind: SpanKind.CONSUMER, attributes });
  const seen: PersistedEvent[] = [];
  const observed = span.isRecording() ? noting(projection, seen) : projection;
  const m = instruments();
  try {
    const outcome = await run(observed);
    span.setAttributes({
      "pupsourcing.events": outcome.processed,
      "pupsourcing.retried": outcome.retried,
      "pupsourcing.skipped": outcome.skipped,
      "pupsourcing.parked": outcome.parked,
    });
    if (outcome.processed > 0) m.eventsProcessed.add(outcome.processed, attributes);
    if (outcome.retried > 0) m.handlerRetries.add(outcome.retried, attributes);
    if (outcome.parked > 0) m.eventsParked.add(outcome.parked, attributes);
    return outcome;
  } catch (error) {
    const { name, code } = error as { name?: string; code?: string };
    m.batchFailures.add(1, { ...attributes, "error.type": code ?? name ?? "Error" });
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
    throw error;
  } finally {
    if (seen.length > 0) span.addLinks(links(seen));
    span.end();
    m.batchDuration.record((performance.now() - started) / 1000, attributes);
  }
}

/** The projection, its handlers noting each event they get into `seen`. */
function noting<P extends ObservedProjection>(projection: P, seen: PersistedEvent[]): P {
  const handlers: PropertyDescriptorMap = {
    handle: {
      value: (event: PersistedEvent, tx: unknown) => {
        seen.push(event);
        return projection.handle(event, tx);
      },
    },
  };
  if (projection.handleBatch) {
    handlers.handleBatch = {
      value: (events: readonly PersistedEvent[], tx: unknown) => {
        seen.push(...events);
        return projection.handleBatch!(events, tx);
      },
    };
  }
  return Object.create(projection, handlers);
}

/** One link per distinct append context among `events`, at most {@linkcode MAX_LINKS}. */
function links(events: readonly PersistedEvent[]): Link[] {
  const found = new Map<string, Link>();
  for (const event of events) {
    const context = appendContextOf(event.metadata);
    if (context === undefined || found.has(context.spanId)) continue;
    found.set(context.spanId, { context });
    if (found.size === MAX_LINKS) break;
  }
  return [...found.values()];
}
