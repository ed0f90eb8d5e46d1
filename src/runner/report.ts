/**
 * What a runner's worker tells its logger besides the processor's own
 * lines: where it starts and which segments it owns, and while it catches
 * up, a periodic progress line with its rate and lag.
 *
 * @module
 */

import type { Sql } from "postgres";
import { minCursor } from "../es/cursor.ts";
import type { LogFields, Logger } from "../es/logger.ts";
import type { PostgresStore } from "../postgres/mod.ts";
import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import {
  DEFAULT_SEGMENTS,
  ownedSegments,
  type ProcessorConfig,
  type Projection,
  ProjectionProcessor,
  projectionStatus,
  type RunOptions,
  type RunOutcome,
} from "../projection/mod.ts";

/** How often a catching-up worker logs its progress unless told otherwise. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;

/**
 * A logger that also counts the events the processor reports as done (its
 * `events processed` lines, and each event it logs as parked or skipped),
 * for progress reports.
 */
export function countingLogger(inner: Logger | undefined, count: (n: number) => void): Logger {
  return {
    debug: (message, fields) => inner?.debug(message, fields),
    info(message, fields) {
      if (message === "events processed") count(Number(fields?.processed ?? 0));
      inner?.info(message, fields);
    },
    error(message, fields) {
      if (message === "projection event parked" || message === "projection event skipped") {
        count(1);
      }
      inner?.error(message, fields);
    },
  };
}

/** Where one worker sits: its partition and the projection's segment count. */
export interface WorkerPlace {
  partitionKey: number;
  totalPartitions: number;
  segments: number;
}

/**
 * Reports one worker through `logger`: `projection worker starting` (its
 * segments, the checkpoint it starts from, its lag), then every
 * `intervalMs` while it has work, `projection worker progress` (events
 * processed, rate per second since the last line, lag in events and
 * seconds). Give the processor {@linkcode WorkerReport.logger}.
 */
export class WorkerReport {
  /** The logger to give the processor: the caller's, counting processed events. */
  readonly logger: Logger;
  readonly #owned: readonly number[];
  #processed = 0;

  constructor(
    // deno-lint-ignore no-explicit-any -- any client configuration
    private readonly sql: Sql<any>,
    private readonly store: PostgresStore,
    private readonly projection: Projection,
    private readonly place: WorkerPlace,
    private readonly inner: Logger,
    private readonly intervalMs: number,
  ) {
    this.logger = countingLogger(inner, (n) => this.#processed += n);
    this.#owned = ownedSegments(place.partitionKey, place.totalPartitions, place.segments);
  }

  /** Runs `run` between the start line and the last progress line. */
  async around(run: () => Promise<RunOutcome>): Promise<RunOutcome> {
    const base = {
      projection: this.projection.name,
      partition: `${this.place.partitionKey}/${this.place.totalPartitions}`,
    };
    const lag = await this.#lag();
    this.inner.info("projection worker starting", {
      ...base,
      segments: this.#owned.join(","),
      from: lag?.from ?? "the start of the log (first run)",
      lagEvents: lag?.events,
    });
    let last = { at: performance.now(), processed: 0 };
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const now = { at: performance.now(), processed: this.#processed };
        const { events, seconds } = await this.#lag() ?? {};
        const done = now.processed - last.processed;
        if (done > 0 || (events ?? 0n) > 0n) {
          const fields: LogFields = {
            ...base,
            processed: now.processed,
            rate: Math.round(done / ((now.at - last.at) / 1000)),
            lagEvents: events,
            lagSeconds: seconds,
          };
          this.inner.info("projection worker progress", fields);
        }
        last = now;
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), this.intervalMs);
    try {
      return await run();
    } finally {
      clearInterval(timer);
    }
  }

  /** This worker's checkpoint and lag; `undefined` before its first run or when unreachable. */
  async #lag(): Promise<{ from: string; events: bigint; seconds: number } | undefined> {
    try {
      const [status] = await projectionStatus(this.sql, this.store, {
        projections: [this.projection],
      });
      const mine = status.segmentDetails.filter((s) => this.#owned.includes(s.segment));
      if (mine.length === 0) return undefined;
      const oldest = minCursor(mine.map((s) => s.checkpoint));
      return {
        from: `${oldest.transactionId}/${oldest.globalPosition}`,
        events: mine.reduce((n, s) => n + s.lagEvents, 0n),
        seconds: Math.max(...mine.map((s) => s.lagSeconds)),
      };
    } catch {
      // A projection that never ran, or a database away: the processor
      // reports what matters; the report just has less to say.
      return undefined;
    }
  }
}

/**
 * A processor for one worker of a runner, reported through its logger
 * (when its configuration has one; no logger, no work): constructing it
 * validates the configuration, as the processor does.
 */
export function reportedProcessor(
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql: Sql<any>,
  store: PostgresStore,
  projection: Projection,
  config: ProcessorConfig,
  progressIntervalMs: number,
): { run(options: RunOptions): Promise<RunOutcome> } {
  const inner = config.logger;
  if (inner === undefined || progressIntervalMs === Infinity) {
    const processor = new ProjectionProcessor(sql, store, config);
    return { run: (options) => processor.run(projection, options) };
  }
  const place = {
    partitionKey: config.partitionKey ?? 0,
    totalPartitions: config.totalPartitions ?? 1,
    segments: config.segments ?? DEFAULT_SEGMENTS,
  };
  const report = new WorkerReport(sql, store, projection, place, inner, progressIntervalMs);
  const processor = new ProjectionProcessor(sql, store, { ...config, logger: report.logger });
  return { run: (options) => report.around(() => processor.run(projection, options)) };
}

/** Checks a runner's `progressIntervalMs`: a positive number of milliseconds, or `Infinity`. */
export function progressInterval(field: string, value: unknown): number {
  if (value === undefined) return DEFAULT_PROGRESS_INTERVAL_MS;
  if (typeof value !== "number" || !(value > 0)) {
    throw new ValidationError(
      field,
      "a number of milliseconds > 0 (Infinity: no report)",
      show(value),
    );
  }
  return value;
}
