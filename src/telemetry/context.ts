/**
 * The append's trace context, carried in each event's metadata as a W3C
 * `traceparent` (https://www.w3.org/TR/trace-context/), so a projection's
 * batch span can link to the request that appended the event.
 *
 * @module
 */

import { type SpanContext, TraceFlags } from "@opentelemetry/api";
import type { Event, JsonValue } from "../es/event.ts";

/**
 * A trace context read from an event's metadata: an OpenTelemetry
 * `SpanContext` (pass it as a link's `context`).
 *
 * @example
 * ```ts
 * import type { TraceContext } from "@getpup/pupsourcing/telemetry";
 *
 * const describe = (c: TraceContext) => `${c.traceId}/${c.spanId}`;
 * ```
 */
export interface TraceContext {
  /** The trace's id: 32 lowercase hex digits. */
  traceId: string;
  /** The append span's id: 16 lowercase hex digits. */
  spanId: string;
  /** 1 when the trace was sampled, else 0. */
  traceFlags: number;
  /** Always true: the span ran elsewhere. */
  isRemote: boolean;
}

/**
 * The metadata key of the trace context.
 *
 * @example
 * ```ts
 * import { TRACEPARENT } from "@getpup/pupsourcing/telemetry";
 *
 * console.log(TRACEPARENT); // traceparent
 * ```
 */
export const TRACEPARENT = "traceparent";

const FORMAT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * `events` with `traceparent` set in their metadata to `span`'s context:
 * events without metadata get `{ traceparent }`, object metadata gets the
 * key added; metadata of another shape, or that already has the key, is
 * left as it is.
 */
export function withTraceContext(events: readonly Event[], span: SpanContext): Event[] {
  const flags = (span.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, "0");
  const traceparent = `00-${span.traceId}-${span.spanId}-${flags}`;
  return events.map((event) => {
    const metadata = event.metadata;
    if (metadata === undefined || metadata === null) {
      return { ...event, metadata: { [TRACEPARENT]: traceparent } };
    }
    if (typeof metadata !== "object" || Array.isArray(metadata) || TRACEPARENT in metadata) {
      return event;
    }
    return { ...event, metadata: { ...metadata, [TRACEPARENT]: traceparent } };
  });
}

/**
 * The trace context an event was appended under (from its metadata's
 * `traceparent`), as a remote span context to link to; `undefined` when
 * it has none.
 *
 * @example Link a span of your own to the request that appended the event
 * ```ts ignore
 * import { trace } from "@opentelemetry/api";
 * import { appendContextOf } from "@getpup/pupsourcing/telemetry";
 *
 * const context = appendContextOf(event.metadata);
 * const span = trace.getTracer("app").startSpan("send email", {
 *   links: context ? [{ context }] : [],
 * });
 * ```
 */
export function appendContextOf(metadata: JsonValue | undefined): TraceContext | undefined {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    return undefined;
  }
  const value = metadata[TRACEPARENT];
  const found = typeof value === "string" ? FORMAT.exec(value) : null;
  if (!found) return undefined;
  return {
    traceId: found[1],
    spanId: found[2],
    traceFlags: parseInt(found[3], 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
}
