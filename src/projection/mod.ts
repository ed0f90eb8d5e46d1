/**
 * Projections: turn the event log into read models, exactly once.
 *
 * A {@linkcode Projection} is a name, an optional scope and a `handle(event,
 * tx)` that writes through the batch's transaction. A
 * {@linkcode ProjectionProcessor} runs it: it reads the log in commit-safe
 * order (never skipping an event whose transaction committed late), spreads
 * it over a fixed number of segments (FNV-1a of the aggregate id), keeps
 * one checkpoint per segment, and lets any number of workers share the
 * segments (`partitionKey` of `totalPartitions`), so the worker count can
 * change between runs without skipping or repeating anything. In group
 * mode (`group: {}`), workers that come and go at will share the segments
 * through leases in PostgreSQL; {@linkcode segmentOwnership} shows who
 * owns which.
 *
 * @example Keep a count of registered users
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresStore } from "@getpup/pupsourcing/postgres";
 * import { type Projection, ProjectionProcessor } from "@getpup/pupsourcing/projection";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgresStore();
 * const users: Projection = {
 *   name: "user_count",
 *   eventTypes: ["UserRegistered"],
 *   async handle(_event, tx) {
 *     await tx`update user_count set n = n + 1`;
 *   },
 * };
 * const controller = new AbortController();
 * await new ProjectionProcessor(sql, store).run(users, { signal: controller.signal });
 * ```
 *
 * @module
 */

export type { Projection } from "./projection.ts";
export type { ErrorPolicy, ResolvedPolicy } from "./policy.ts";
export { HandlerTimeoutError } from "./handler.ts";
export {
  discardParked,
  listParked,
  type ListParkedOptions,
  type ParkedEvent,
  type ParkedFilter,
} from "./parked_admin.ts";
export type { ParkedReason, ParkedStatus } from "./parked.ts";
export { type ReplayOptions, type ReplayOutcome, replayParked } from "./replay.ts";
export { type ProcessorConfig, ProjectionProcessor } from "./processor.ts";
export { DEFAULT_LEASE_MS, type GroupOptions, type ResolvedGroup } from "./group_options.ts";
export { PartitioningModeError } from "./mode_conflict.ts";
export {
  type GroupMemberInfo,
  type Ownership,
  type SegmentOwner,
  segmentOwnership,
} from "./ownership.ts";
export type { RunMode, RunOptions, RunOutcome } from "./run.ts";
export {
  type ProjectionStatus,
  projectionStatus,
  type SegmentStatus,
  type StatusOptions,
} from "./status.ts";
export {
  ProjectionBusyError,
  type ResetOptions,
  type ResetOutcome,
  resetProjection,
} from "./reset.ts";
export { ProjectionWaitTimeoutError, waitForProjections, type WaitOptions } from "./wait.ts";
export type { ResolvedConfig } from "./config.ts";
export { DEFAULT_SEGMENTS, MAX_SEGMENTS, ownedSegments, validatePartitioning } from "./segments.ts";
export {
  type TypedHandlers,
  type TypedProjection,
  typedProjection,
  type TypedProjectionOptions,
} from "./typed.ts";
