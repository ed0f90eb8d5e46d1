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

/** Where one worker sits: its partition (or group member id) and the projection's segment count. */
export interface WorkerPlace {
  partitionKey: number;
  totalPartitions: number;
  segments: number;
  /** Set in group mode: the member's segments come and go with its leases. */
  memberId?: string;
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
    // A group member's share changes with its leases: it reports the whole projection.
    this.#owned = place.memberId === undefined
      ? ownedSegments(place.partitionKey, place.totalPartitions, place.segments)
      : ownedSegments(0, 1, place.segments);
  }

  /** Runs `run` between the start line and the last progress line. */
  async around(run: () => Promise<RunOutcome>): Promise<RunOutcome> {
    const { memberId } = this.place;
    const base = memberId === undefined
      ? {
        projection: this.projection.name,
        partition: `${this.place.partitionKey}/${this.place.totalPartitions}`,
      }
      : { projection: this.projection.name, member: memberId };
    const lag = await this.#lag();
    this.inner.info("projection worker starting", {
      ...base,
      segments: memberId === undefined ? this.#owned.join(",") : "by lease (group mode)",
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
): Pick<ProjectionProcessor, "config"> & { run(options: RunOptions): Promise<RunOutcome> } {
  // Constructed first: it validates the configuration and resolves its defaults.
  const plain = new ProjectionProcessor(sql, store, config);
  const inner = config.logger;
  if (inner === undefined || progressIntervalMs === Infinity) {
    return { config: plain.config, run: (options) => plain.run(projection, options) };
  }
  const report = new WorkerReport(
    sql,
    store,
    projection,
    placeOf(plain.config),
    inner,
    progressIntervalMs,
  );
  const processor = new ProjectionProcessor(sql, store, { ...config, logger: report.logger });
  return {
    config: processor.config,
    run: (options) => report.around(() => processor.run(projection, options)),
  };
}

/** Where a worker of this resolved configuration sits. */
function placeOf(config: ProjectionProcessor["config"]): WorkerPlace {
  const { partitionKey, totalPartitions, segments, group } = config;
  return { partitionKey, totalPartitions, segments, memberId: group?.memberId };
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
