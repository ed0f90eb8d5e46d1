/**
 * Cursor arithmetic: the global log is ordered by the pair
 * `(transactionId, globalPosition)`, never by the position alone.
 *
 * @module
 */

import type { Cursor } from "./event.ts";

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareCursors(a: Cursor, b: Cursor): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.globalPosition !== b.globalPosition) return a.globalPosition < b.globalPosition ? -1 : 1;
  return 0;
}

/** The later of two cursors. */
export function maxCursor(a: Cursor, b: Cursor): Cursor {
  return compareCursors(a, b) >= 0 ? a : b;
}

/** The earliest of non-empty `cursors`. */
export function minCursor(cursors: readonly Cursor[]): Cursor {
  return cursors.reduce((a, b) => (compareCursors(a, b) <= 0 ? a : b));
}

/** The cursor just after an event. */
export function cursorOf(event: Cursor): Cursor {
  return { transactionId: event.transactionId, globalPosition: event.globalPosition };
}
