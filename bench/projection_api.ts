/**
 * The projection processor and runner, loaded only if they have landed, so
 * the benchmark runs (and type-checks) before and after they exist.
 *
 * @module
 */

import type postgres from "postgres";
import type { PersistedEvent } from "../src/es/mod.ts";
import type { PostgresStore } from "../src/postgres/mod.ts";

/** A projection as the processor takes it. */
export interface BenchProjection {
  name: string;
  handle(event: PersistedEvent, tx: unknown): void | Promise<void>;
}

/** Run options of the processor and the runner. */
export interface BenchRunOptions {
  signal?: AbortSignal;
  mode: "continuous" | "until_caught_up";
}

/** What the benchmark needs from src/projection and src/runner. */
export interface ProjectionApi {
  processor(
    sql: postgres.Sql,
    store: PostgresStore,
    options: Record<string, unknown>,
  ): { run(projection: BenchProjection, options: BenchRunOptions): Promise<unknown> };
  partitions?: (
    sql: postgres.Sql,
    store: PostgresStore,
    projection: BenchProjection,
    n: number,
    options: BenchRunOptions & { config?: Record<string, unknown> },
  ) => Promise<unknown>;
}

/** The API, or `undefined` while src/projection has no ProjectionProcessor. */
export async function loadProjectionApi(): Promise<ProjectionApi | undefined> {
  const projection = await import("../src/projection/mod.ts") as Record<string, unknown>;
  const runner = await import("../src/runner/mod.ts") as Record<string, unknown>;
  const Processor = projection.ProjectionProcessor as
    | (new (...args: unknown[]) => ReturnType<ProjectionApi["processor"]>)
    | undefined;
  if (typeof Processor !== "function") return undefined;
  const partitions = runner.runProjectionPartitions as ProjectionApi["partitions"];
  return {
    processor: (sql, store, options) => new Processor(sql, store, options),
    partitions: typeof partitions === "function" ? partitions : undefined,
  };
}
