/**
 * What the benchmark taught us, written into docs/benchmarks.md.
 *
 * @module
 */

/** Findings, as markdown. */
export const FINDINGS = `(to be written)`;
