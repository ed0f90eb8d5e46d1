/**
 * What a workload reports: one row per variant, and the targets it is held to.
 *
 * @module
 */

import { type Sample, summarize, type Summary } from "./stats.ts";

/** Whose code a row measures. */
export type Role = "ours" | "ceiling" | "reference";

/** One variant of a workload. */
export interface Row {
  variant: string;
  role: Role;
  summary: Summary;
  /** Throughput over the workload's best ceiling. */
  ratio?: number;
}

/**
 * A target: a throughput ratio between two rows, a latency bound, or a
 * bound on the ratio of two rows' median latencies.
 */
export type Target =
  | { variant: string; against: string; min: number }
  | { variant: string; p50MaxMs: number }
  | { variant: string; p50Against: string; max: number };

/** A target and whether this run met it. */
export interface Verdict {
  target: Target;
  label: string;
  value: number;
  met: boolean;
}

/** One workload's outcome. */
export interface WorkloadResult {
  id: string;
  title: string;
  unit: string;
  rows: Row[];
  /** The ceiling row that ratios are taken against. */
  ceiling?: string;
  verdicts: Verdict[];
  notes: string[];
}

/** Builds a result: summarizes samples, picks the best ceiling, judges targets. */
export function result(
  id: string,
  title: string,
  samples: Record<string, Sample[]>,
  roles: Record<string, Role>,
  targets: Target[] = [],
  notes: string[] = [],
  unit = "events/s",
): WorkloadResult {
  const rows: Row[] = Object.entries(samples).map(([variant, s]) => ({
    variant,
    role: roles[variant] ?? "reference",
    summary: summarize(s),
  }));
  const ceilings = rows.filter((r) => r.role === "ceiling");
  const best = ceilings.sort((a, b) => b.summary.throughput - a.summary.throughput)[0];
  if (best) {
    for (const row of rows) row.ratio = row.summary.throughput / best.summary.throughput;
  }
  const byName = new Map(rows.map((r) => [r.variant, r]));
  const verdicts = targets.flatMap((target): Verdict[] => {
    const row = byName.get(target.variant);
    if (!row) return [];
    if ("p50MaxMs" in target) {
      const value = row.summary.p50 ?? Infinity;
      return [{
        target,
        label: `p50 ≤ ${target.p50MaxMs} ms`,
        value,
        met: value <= target.p50MaxMs,
      }];
    }
    if ("p50Against" in target) {
      const against = byName.get(target.p50Against);
      if (!against) return [];
      const value = (row.summary.p50 ?? Infinity) / (against.summary.p50 ?? NaN);
      const label = `p50 ≤ ${target.max} × ${against.variant}`;
      return [{ target, label, value, met: value <= target.max }];
    }
    const against = target.against === "ceiling" ? best : byName.get(target.against);
    if (!against) return [];
    const value = row.summary.throughput / against.summary.throughput;
    const label = `≥ ${target.min} × ${against.variant}`;
    return [{ target, label, value, met: value >= target.min }];
  });
  return { id, title, unit, rows, ceiling: best?.variant, verdicts, notes };
}
