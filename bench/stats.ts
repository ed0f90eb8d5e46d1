/**
 * Medians, percentiles and the timing helpers every workload uses.
 *
 * @module
 */

import process from "node:process";
import { cpuNow, cpuSince, type CpuTime } from "./cpu.ts";

/** The median of `values` (0 when empty). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** The `p`th percentile (nearest rank) of `values` (0 when empty). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** What one repetition of one variant measured. */
export interface Sample {
  /** Events (or operations) per second. */
  throughput: number;
  /** Events (or operations) done, and the seconds they took, when known. */
  units?: number;
  seconds?: number;
  /** Per-operation latencies in milliseconds, when the workload has operations. */
  latencies: number[];
  /** The CPU time the sample cost (see ./cpu.ts), when measured. */
  cpu?: CpuTime;
}

/** Several repetitions of one variant, summarized. */
export interface Summary {
  /** Median throughput over the repetitions. */
  throughput: number;
  /** Each repetition's throughput, in run order. */
  runs: number[];
  /** Latency percentiles over every operation of every repetition, in ms. */
  p50?: number;
  p99?: number;
  /** CPU milliseconds per 1,000 units over every repetition, of the client and the server. */
  cpuPer1000?: CpuTime;
  /** The cores they kept busy on average: CPU seconds over wall-clock seconds. */
  cores?: CpuTime;
}

/** Summarizes repetitions: the median throughput and pooled latency percentiles. */
export function summarize(samples: readonly Sample[]): Summary {
  const runs = samples.map((s) => s.throughput);
  const latencies = samples.flatMap((s) => s.latencies);
  return {
    throughput: median(runs),
    runs,
    ...(latencies.length > 0
      ? { p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
      : {}),
    ...cpuPer1000(samples),
  };
}

/** The CPU per 1,000 units, and the cores busy, of the samples that measured CPU. */
function cpuPer1000(samples: readonly Sample[]): Pick<Summary, "cpuPer1000" | "cores"> {
  const measured = samples.filter((s) => s.cpu && s.units && s.seconds);
  const units = measured.reduce((sum, s) => sum + s.units!, 0);
  const seconds = measured.reduce((sum, s) => sum + s.seconds!, 0);
  if (units === 0 || seconds === 0) return {};
  const total = sumCpu(measured.map((s) => s.cpu!));
  const scaled = (by: number): CpuTime => ({
    client: total.client * by,
    ...(total.server === undefined ? {} : { server: total.server * by }),
  });
  return { cpuPer1000: scaled(1e6 / units), cores: scaled(1 / seconds) };
}

/** The sum of CPU times; the server's only when every one has it. */
function sumCpu(times: readonly CpuTime[]): CpuTime {
  const client = times.reduce((sum, t) => sum + t.client, 0);
  return times.every((t) => t.server !== undefined)
    ? { client, server: times.reduce((sum, t) => sum + t.server!, 0) }
    : { client };
}

/**
 * Runs `op` from `clients` concurrent loops until `seconds` have passed;
 * returns operations per second (times `perOp`) and each operation's latency.
 */
export async function runFor(
  seconds: number,
  clients: number,
  op: (client: number, i: number) => Promise<unknown>,
  perOp = 1,
): Promise<Sample> {
  const latencies: number[] = [];
  const cpu = cpuNow();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, async (_, client) => {
    for (let i = 0; performance.now() < deadline; i++) {
      const t0 = performance.now();
      await op(client, i);
      latencies.push(performance.now() - t0);
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  const units = latencies.length * perOp;
  return { throughput: units / elapsed, latencies, units, seconds: elapsed, cpu: cpuSince(cpu) };
}

/** Runs `op` `times` times in a row; returns units per second and each latency. */
export async function runTimes(
  times: number,
  op: (i: number) => Promise<unknown>,
  perOp: number,
): Promise<Sample> {
  const latencies: number[] = [];
  const cpu = cpuNow();
  const start = performance.now();
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await op(i);
    latencies.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - start) / 1000;
  const units = times * perOp;
  return { throughput: units / elapsed, latencies, units, seconds: elapsed, cpu: cpuSince(cpu) };
}

/** Times one call; returns units per second, without latencies. */
export async function runOnce(op: () => Promise<number>): Promise<Sample> {
  const cpu = cpuNow();
  const start = performance.now();
  const units = await op();
  const seconds = (performance.now() - start) / 1000;
  return { throughput: units / seconds, latencies: [], units, seconds, cpu: cpuSince(cpu) };
}

/**
 * Runs each variant `reps` times, interleaved (A B C, B C A, ...) so that a
 * noisy neighbour slows every variant alike; returns each variant's samples.
 */
export async function interleave(
  reps: number,
  variants: Record<string, () => Promise<Sample>>,
): Promise<Record<string, Sample[]>> {
  const names = Object.keys(variants);
  const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + rep) % names.length];
      samples[name].push(await variants[name]());
    }
  }
  return samples;
}

/**
 * Like {@linkcode interleave}, for timed variants: each repetition is cut
 * into `slices` short runs that take turns across the variants, so that a
 * burst of load from a neighbour lands on every variant alike. Each
 * repetition's sample merges its slices.
 *
 * Each variant first runs one slice untimed, so that the first
 * repetition does not count what only the first appends pay: the JIT
 * compiling the variant's path and each connection preparing its
 * statements. Without it, the first slice of the coalesced W1c-64 ran at
 * half the rate of its later ones, and that repetition came out 15-20%
 * below the others. A variant on fresh tables empties them before every
 * slice, so its young-table cost is still measured in each one.
 */
export async function interleaveSlices(
  reps: number,
  slices: number,
  variants: Record<string, () => Promise<Sample>>,
): Promise<Record<string, Sample[]>> {
  const names = Object.keys(variants);
  const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const name of names) await variants[name]();
  for (let rep = 0; rep < reps; rep++) {
    const parts: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let slice = 0; slice < slices; slice++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + slice + rep) % names.length];
        parts[name].push(await variants[name]());
        if (process.env.BENCH_TRACE) {
          const last = parts[name].at(-1)!;
          console.error(
            `  rep ${rep} slice ${slice} ${name} ${last.seconds?.toFixed(2)}s ${last.units} max ${
              Math.max(...last.latencies).toFixed(1)
            }ms`,
          );
        }
      }
    }
    for (const name of names) {
      const units = parts[name].reduce((sum, p) => sum + (p.units ?? 0), 0);
      const seconds = parts[name].reduce((sum, p) => sum + (p.seconds ?? 0), 0);
      const cpu = parts[name].map((p) => p.cpu);
      samples[name].push({
        throughput: units / seconds,
        latencies: parts[name].flatMap((p) => p.latencies),
        units,
        seconds,
        ...(cpu.every((t) => t !== undefined) ? { cpu: sumCpu(cpu) } : {}),
      });
    }
  }
  return samples;
}
