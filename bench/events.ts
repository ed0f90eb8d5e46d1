/**
 * The events the workloads write: UUID aggregate ids and a ~200-byte JSON
 * payload, the same bytes for our code and for the hand-written SQL.
 *
 * @module
 */

import type { Event } from "../src/es/mod.ts";

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

/** `count` events for one aggregate, numbered from `first`. */
export function eventsFor(aggregateId: string, count: number, first = 1): Event[] {
  return Array.from({ length: count }, (_, i) => ({
    aggregateType: AGGREGATE_TYPE,
    aggregateId,
    eventType: EVENT_TYPE,
    payload: payload(aggregateId, first + i),
  }));
}
