/**
 * The events the workloads write: UUID aggregate ids and a ~200-byte JSON
 * payload, the same bytes for our code and for the hand-written SQL.
 *
 * @module
 */

import type { Event } from "../src/es/mod.ts";
import { uuidv7 } from "../src/es/uuid.ts";

const encoder = new TextEncoder();

/** The aggregate type every workload writes. */
export const AGGREGATE_TYPE = "Order";
/** The event type every workload writes. */
export const EVENT_TYPE = "OrderLineAdded";

/** A ~200-byte JSON payload. */
export function payload(aggregateId: string, n: number): Uint8Array {
  return encoder.encode(JSON.stringify({
    orderId: aggregateId,
    line: n,
    sku: `SKU-${(n * 7919) % 100000}`.padEnd(12, "0"),
    quantity: (n % 5) + 1,
    unitPrice: { amount: 1999 + n, currency: "EUR" },
    note: "gift wrap, leave at the back door",
    addedAt: "2026-11-28T04:00:00.000Z",
  }));
}

/**
 * What the events of a workload carry besides their payload: event ids
 * chosen by the caller (as every idempotent client does) or left to the
 * store, and metadata with trace, correlation and causation ids or none.
 */
export interface EventShape {
  callerIds: boolean;
  metadata: boolean;
}

/** Bare events, ids chosen by the store: the lightest append. */
export const BARE: EventShape = { callerIds: false, metadata: false };

/** Events as an idempotent web application writes them. */
export const REALISTIC: EventShape = { callerIds: true, metadata: true };

/** How a shape is named in workload titles. */
export function describeShape(shape: EventShape): string {
  return [
    shape.callerIds ? "caller-chosen event ids" : "store-chosen event ids",
    shape.metadata ? "metadata, trace, correlation and causation ids" : "no metadata",
  ].join(", ");
}

/** A request's trace context: W3C trace id and span, as a tracing SDK would set them. */
function traceFields(
  n: number,
): Pick<Event, "metadata" | "traceId" | "correlationId" | "causationId"> {
  const traceId = crypto.randomUUID().replace(/-/g, "");
  return {
    metadata: {
      tenant: "acme",
      userId: `user-${n % 97}`,
      source: "web",
      traceparent: `00-${traceId}-${traceId.slice(0, 16)}-01`,
    },
    traceId,
    correlationId: crypto.randomUUID(),
    causationId: crypto.randomUUID(),
  };
}

/** `count` events for one aggregate, numbered from `first`, of `shape`. */
export function eventsFor(
  aggregateId: string,
  count: number,
  first = 1,
  shape: EventShape = BARE,
): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    aggregateType: AGGREGATE_TYPE,
    aggregateId,
    eventType: EVENT_TYPE,
    payload: payload(aggregateId, first + i),
    ...(shape.callerIds ? { eventId: uuidv7() } : {}),
    ...(shape.metadata ? traceFields(first + i) : {}),
  }));
}
