/**
 * Calling a projection's handler on one event: a throw of any value, and
 * a handler that has not settled within the policy's `handlerTimeoutMs`,
 * both become a {@linkcode ProjectionError}. A timed-out handler is left
 * running, but its rejection, whenever it comes, is observed here, and
 * its later statements are refused by the batch's guarded transaction.
 *
 * @module
 */

import type { TransactionSql } from "postgres";
import type { PersistedEvent } from "../es/event.ts";
import { ProjectionError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import type { Projection } from "./projection.ts";

/**
 * What a handler that did not settle within `handlerTimeoutMs` is failed
 * with: the `cause` of its `ProjectionError`, and the error a parked row
 * records.
 *
 * @example
 * ```ts
 * import { HandlerTimeoutError } from "@getpup/pupsourcing/projection";
 *
 * console.log(new HandlerTimeoutError(500).message);
 * ```
 */
export class HandlerTimeoutError extends Error {
  /** Creates the error for a handler that ran longer than `timeoutMs`. */
  constructor(timeoutMs: number) {
    super(`the handler did not settle within handlerTimeoutMs (${timeoutMs} ms)`);
    this.name = "HandlerTimeoutError";
  }
}

/**
 * Runs `projection.handle(event, tx)` (or `call`, a batch handler whose
 * first event is `event`); any failure is logged and comes back as a
 * {@linkcode ProjectionError} whose cause is what the handler threw.
 * Without a timeout, a handler that returns without a promise (or throws)
 * is done, and its outcome comes back at once, `undefined` or thrown, with
 * no promise made and no microtask spent on it, which is most of what a
 * projection costs per event when its handler does its work in memory.
 * Otherwise the outcome comes back as a promise that rejects on failure,
 * or when the handler has not settled within `timeoutMs`.
 *
 * @throws {ProjectionError} when the handler throws, without a timeout.
 */
export function startHandler(
  projection: Projection,
  event: PersistedEvent,
  // deno-lint-ignore no-explicit-any -- any client configuration
  tx: TransactionSql<any>,
  timeoutMs: number | undefined,
  logger: Logger | undefined,
  call?: () => void | Promise<void>,
): Promise<void> | undefined {
  if (timeoutMs === undefined) {
    let result: unknown;
    try {
      result = call ? call() : projection.handle(event, tx);
    } catch (cause) {
      throw failed(projection, event, cause, logger);
    }
    if (!isThenable(result)) return undefined;
    return Promise.resolve(result).then(noop, (cause) => {
      throw failed(projection, event, cause, logger);
    });
  }
  // The deadline is set before the handler starts: a timer the handler
  // sets for as long fires after it, when the transaction is over.
  const work = Promise.resolve().then(() => call ? call() : projection.handle(event, tx));
  return withTimeout(work, timeoutMs).catch((cause) => {
    throw failed(projection, event, cause, logger);
  });
}

function noop(): void {}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** Logs a handler's failure and returns the {@linkcode ProjectionError} for it. */
function failed(
  projection: Projection,
  event: PersistedEvent,
  cause: unknown,
  logger: Logger | undefined,
): ProjectionError {
  logger?.error("projection handler error", {
    projection: projection.name,
    position: event.globalPosition,
    transactionId: event.transactionId,
    aggregateType: event.aggregateType,
    aggregateId: event.aggregateId,
    eventType: event.eventType,
    error: cause,
  });
  return new ProjectionError(projection.name, event, cause);
}

/** `work`, or a {@linkcode HandlerTimeoutError} once `timeoutMs` has passed. */
async function withTimeout(work: Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandlerTimeoutError(timeoutMs)), timeoutMs);
  });
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
