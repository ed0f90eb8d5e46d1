/**
 * The size of a run: full, or `--quick` for the CI smoke run.
 *
 * @module
 */

/** How long and how big each workload runs. */
export interface Config {
  quick: boolean;
  /** Repetitions of each variant. */
  reps: number;
  /** Seconds per repetition of the timed append workloads. */
  seconds: number;
  /** Turns the timed variants take within one repetition. */
  slices: number;
  /** Appends of 1000 events per repetition (W3). */
  bulkAppends: number;
  /** Turns the W3 variants take within one repetition, `bulkAppends / bulkSlices` appends each. */
  bulkSlices: number;
  /** Aggregates and events per aggregate in the read fixture (W4, W5). */
  fixtureAggregates: number;
  fixtureVersions: number;
  /** Reads of one 1000-event aggregate per repetition (W4). */
  streamReads: number;
  /** Appends whose wake-up latency is measured per repetition (W6). */
  latencyAppends: number;
  /** Commands per repetition on a snapshotted aggregate (W7); fewer without snapshots. */
  commands: number;
}

/** The configuration for `--quick` or a full run. */
export function config(quick: boolean): Config {
  return quick
    ? {
      quick,
      reps: 1,
      seconds: 1.5,
      slices: 3,
      bulkAppends: 3,
      bulkSlices: 1,
      fixtureAggregates: 50,
      fixtureVersions: 1000,
      streamReads: 10,
      latencyAppends: 30,
      commands: 20,
    }
    : {
      quick,
      reps: 3,
      seconds: 6,
      slices: 12,
      bulkAppends: 30,
      bulkSlices: 10,
      fixtureAggregates: 1000,
      fixtureVersions: 1000,
      streamReads: 100,
      latencyAppends: 200,
      commands: 100,
    };
}
