/**
 * Sleeping between polls, and being woken early: by a NOTIFY from an
 * append, or by the abort signal. Polling stays the source of truth; a
 * notification only shortens a sleep.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Logger } from "../es/logger.ts";

/** How a sleep ended. */
export type Awakening = "timeout" | "woken" | "aborted";

/** A sleep that a wake-up or an abort cuts short. */
export class Alarm {
  #woken = false;
  #ring: (() => void) | undefined;

  /**
   * Wakes the current sleep, or the next one if none is running: a
   * notification that arrives during a batch is not lost.
   */
  wake(): void {
    this.#woken = true;
    this.#ring?.();
  }

  /** Sleeps `ms`, unless woken or aborted first. */
  sleep(ms: number, signal: AbortSignal | undefined): Promise<Awakening> {
    if (signal?.aborted) return Promise.resolve("aborted");
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve("woken");
    }
    return new Promise((resolve) => {
      const done = (how: Awakening) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#ring = undefined;
        this.#woken = false;
        resolve(how);
      };
      const onAbort = () => done("aborted");
      const timer = setTimeout(() => done("timeout"), ms);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#ring = () => done("woken");
    });
  }
}

/** A LISTEN that can be stopped. */
export interface WakeUpListener {
  /** Stops listening; waits for a LISTEN still being set up. Never throws. */
  stop(): Promise<void>;
}

/**
 * LISTENs on `channel` through postgres.js's `sql.listen` (its own
 * connection, listened again after a reconnect) and rings `alarm` for every
 * notification that may concern the projection. The append's payload is
 * the aggregate type, so a scoped projection ignores the others.
 *
 * The LISTEN is set up in the background: a processor never waits for it,
 * and if it fails, or its connection is lost for good, the processor polls
 * on (with backoff) and only logs it.
 */
export function listenForWakeUps(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  channel: string,
  projection: string,
  aggregateTypes: readonly string[] | undefined,
  alarm: Alarm,
  logger: Logger | undefined,
): WakeUpListener {
  let stopped = false;
  let listened = false;
  const scope = aggregateTypes ? new Set(aggregateTypes) : undefined;
  const onNotify = (payload: string) => {
    if (stopped || (scope && !scope.has(payload))) return;
    alarm.wake();
  };
  // Called after the first LISTEN and after each re-LISTEN: notifications
  // sent while the connection was down are lost, so poll at once.
  const onListen = () => {
    if (stopped) return;
    if (listened) {
      logger?.info("projection wake-up listening again", { projection, channel });
      alarm.wake();
    }
    listened = true;
  };
  const setup = sql.listen(channel, onNotify, onListen).then(
    (meta) => meta,
    (error: unknown) => {
      if (!stopped) {
        logger?.error("projection wake-up unavailable, polling only", {
          projection,
          channel,
          error,
        });
      }
      return undefined;
    },
  );
  return {
    async stop() {
      stopped = true;
      const meta = await setup;
      try {
        await meta?.unlisten();
      } catch {
        // The listening connection is gone already: nothing is left to undo.
      }
    },
  };
}
