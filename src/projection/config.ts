/**
 * The processor's configuration, validated once in its constructor.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import type { Logger } from "../es/logger.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/validate.ts";
import { type GroupOptions, type ResolvedGroup, resolveGroup } from "./group_options.ts";
import { type ErrorPolicy, type ResolvedPolicy, resolvePolicy } from "./policy.ts";
import { DEFAULT_SEGMENTS, validatePartitioning } from "./segments.ts";

/**
 * Options of {@linkcode ProjectionProcessor}. Everything has a default: a
 * single worker over 16 segments, batches of 100, woken by NOTIFY and
 * polling every 100 ms, backing off to 5 s while idle, and riding out
 * database outages (a catch-up run gives up after 30 s without reaching
 * the database).
 *
 * @example Worker 2 of 4, in batches of 500
 * ```ts
 * import type { ProcessorConfig } from "@getpup/pupsourcing/projection";
 *
 * const config: ProcessorConfig = { partitionKey: 2, totalPartitions: 4, batchSize: 500 };
 * ```
 */
export interface ProcessorConfig {
  /** At most this many events per batch (one transaction); default 100. */
  batchSize?: number;
  /** This worker's index, in `0..totalPartitions-1`; default 0. */
  partitionKey?: number;
  /** How many workers share the projection; default 1, at most `segments`. */
  totalPartitions?: number;
  /**
   * Group mode: join the projection's consumer group and be given segments
   * through leases, instead of a fixed partition (see
   * {@linkcode GroupOptions}). Not with `partitionKey` or
   * `totalPartitions`: a projection runs in one mode.
   */
  group?: GroupOptions;
  /**
   * How many segments the projection's events are spread over; default 16.
   * Fixed per projection at its first run: running it with another count
   * is refused, since it would move aggregates between checkpoints.
   */
  segments?: number;
  /**
   * Milliseconds between polls while events flow; default 100. While idle
   * the interval doubles after each empty poll, up to `maxPollInterval`.
   */
  pollInterval?: number;
  /** The longest idle poll interval, in milliseconds; default 5000. */
  maxPollInterval?: number;
  /**
   * LISTEN on the store's NOTIFY channel so an append wakes the processor
   * at once; default `true` when the store has a channel. Polling stays
   * the source of truth either way.
   */
  wakeUp?: boolean;
  /**
   * Ride out transient database errors; default `true`. A lost connection
   * (a restart, a failover, `pg_terminate_backend`; postgres.js's
   * `CONNECTION_CLOSED`/`CONNECTION_DESTROYED`, socket errors, SQLSTATE
   * class `08`, `57P01`-`57P03`), a serialization failure (`40001`) or a
   * deadlock (`40P01`), in the processor's own statements or in a handler
   * whose transaction it killed, rolls the batch back (or finds it
   * committed) and the processor tries again after `pollInterval`,
   * doubling up to `maxPollInterval`, logging each retry. Exactly once
   * holds: the checkpoints are re-read under lock. Any other error still
   * rejects `run` at once.
   *
   * `false` fails fast instead: `run` rejects with the error as raised
   * (the raw postgres.js error, or the `ProjectionError` wrapping it), for
   * callers that leave restarts to a supervisor.
   */
  retryTransientErrors?: boolean;
  /**
   * In `"until_caught_up"` mode, how long (milliseconds) the processor
   * keeps retrying a database it cannot reach before `run` rejects with a
   * `DatabaseUnavailableError`; default 30000. The clock starts at the
   * first failed attempt and any statement that succeeds stops it, so
   * this is the time without reaching the database, not the run's total
   * time: a long catch-up never times out while it makes progress. An
   * attempt already under way is not cut short (postgres.js's
   * `connect_timeout` bounds a connect to a host that does not answer).
   * `Infinity` retries forever. `"continuous"` runs ignore it and retry
   * forever, logging each retry.
   */
  catchUpTimeout?: number;
  /**
   * What to do when a handler fails, for projections without an
   * `onError` of their own; default: stop at once, as a `ProjectionError`
   * (see {@linkcode ErrorPolicy}).
   */
  onError?: ErrorPolicy;
  /** Where the processor logs; default: no logging at all. */
  logger?: Logger;
}

/** The keys of {@linkcode ProcessorConfig}, to refuse unknown ones. */
const CONFIG_KEYS: readonly (keyof ProcessorConfig)[] = [
  "batchSize",
  "partitionKey",
  "totalPartitions",
  "group",
  "segments",
  "pollInterval",
  "maxPollInterval",
  "wakeUp",
  "retryTransientErrors",
  "catchUpTimeout",
  "onError",
  "logger",
];

/** The default of {@linkcode ProcessorConfig.catchUpTimeout}. */
const DEFAULT_CATCH_UP_TIMEOUT = 30_000;

/**
 * A validated {@linkcode ProcessorConfig} with every default filled in, as
 * {@linkcode ProjectionProcessor.config} shows it.
 *
 * @example
 * ```ts
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing";
 * import { ProjectionProcessor } from "@getpup/pupsourcing/projection";
 *
 * // Nothing connects before run(): the processor only validates its options.
 * const processor = new ProjectionProcessor(postgres(), new PostgresStore(), {
 *   totalPartitions: 4,
 * });
 * console.log(processor.config.segments); // 16
 * ```
 */
export interface ResolvedConfig {
  /** Events per batch. */
  batchSize: number;
  /** This worker's index. */
  partitionKey: number;
  /** How many workers share the projection. */
  totalPartitions: number;
  /** Group mode's settings; `undefined` for static partitioning. */
  group: ResolvedGroup | undefined;
  /** The projection's segment count. */
  segments: number;
  /** The shortest poll interval, in milliseconds. */
  pollInterval: number;
  /** The longest idle poll interval, in milliseconds. */
  maxPollInterval: number;
  /** Whether the processor LISTENs for appends. */
  wakeUp: boolean;
  /** Whether transient database errors are retried. */
  retryTransientErrors: boolean;
  /** Milliseconds without reaching the database before an `"until_caught_up"` run gives up. */
  catchUpTimeout: number;
  /** The error policy of projections without their own. */
  onError: ResolvedPolicy;
  /** The logger, if any. */
  logger: Logger | undefined;
}

/** The largest batch: one transaction should stay short. */
const MAX_BATCH_SIZE = 100_000;
/** setTimeout's limit (about 24.8 days). */
const MAX_DELAY = 2_147_483_647;

/**
 * Validates `config` and fills in the defaults.
 *
 * @throws {ValidationError} naming the first bad option.
 */
export function resolveConfig(
  options: ProcessorConfig | undefined,
  notifyChannel: string | undefined,
): ResolvedConfig {
  const config = checkOptions("config", options, CONFIG_KEYS);
  const batchSize = config.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ValidationError(
      "batchSize",
      `an integer from 1 to ${MAX_BATCH_SIZE}`,
      show(batchSize),
    );
  }
  if (config.group !== undefined) {
    for (const field of ["partitionKey", "totalPartitions"] as const) {
      if (config[field] !== undefined) {
        throw new ValidationError(
          field,
          "undefined with group: group members are given segments through leases, static " +
            "workers by partition key; run a projection in one mode",
          show(config[field]),
        );
      }
    }
  }
  const group = config.group === undefined ? undefined : resolveGroup(config.group);
  const partitionKey = config.partitionKey ?? 0;
  const totalPartitions = config.totalPartitions ?? 1;
  const segments = config.segments ?? DEFAULT_SEGMENTS;
  validatePartitioning(partitionKey, totalPartitions, segments);
  const pollInterval = config.pollInterval ?? 100;
  if (!isDelay(pollInterval) || pollInterval < 1) {
    throw new ValidationError(
      "pollInterval",
      "milliseconds, from 1 to 2147483647",
      show(pollInterval),
    );
  }
  const maxPollInterval = config.maxPollInterval ?? Math.max(5000, pollInterval);
  if (!isDelay(maxPollInterval) || maxPollInterval < pollInterval) {
    throw new ValidationError(
      "maxPollInterval",
      `milliseconds, from pollInterval (${pollInterval}) to 2147483647`,
      show(maxPollInterval),
    );
  }
  if (config.wakeUp !== undefined && typeof config.wakeUp !== "boolean") {
    throw new ValidationError("wakeUp", "a boolean", show(config.wakeUp));
  }
  if (config.wakeUp === true && notifyChannel === undefined) {
    throw new ValidationError(
      "wakeUp",
      "false or unset when the store has no notifyChannel (nothing would wake it)",
      "true",
    );
  }
  const wakeUp = config.wakeUp ?? notifyChannel !== undefined;
  const retryTransientErrors = config.retryTransientErrors ?? true;
  if (typeof retryTransientErrors !== "boolean") {
    throw new ValidationError("retryTransientErrors", "a boolean", show(retryTransientErrors));
  }
  const catchUpTimeout = config.catchUpTimeout ?? DEFAULT_CATCH_UP_TIMEOUT;
  if (
    typeof catchUpTimeout !== "number" || Number.isNaN(catchUpTimeout) || catchUpTimeout <= 0
  ) {
    throw new ValidationError(
      "catchUpTimeout",
      "a positive number of milliseconds, or Infinity",
      show(catchUpTimeout),
    );
  }
  return {
    batchSize,
    partitionKey,
    totalPartitions,
    group,
    segments,
    pollInterval,
    maxPollInterval,
    wakeUp,
    retryTransientErrors,
    catchUpTimeout,
    onError: resolvePolicy("onError", config.onError),
    logger: config.logger,
  };
}

function isDelay(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value <= MAX_DELAY;
}
