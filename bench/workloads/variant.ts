/**
 * The variants every append workload runs in: the events' shape (whose
 * ids, what metadata), and whether the tables are fresh.
 *
 * @module
 */

import { BARE, describeShape, type EventShape } from "../events.ts";

/** One variant of an append workload. */
export interface AppendVariant {
  /** The id's suffix: `W1-1/i`. */
  suffix: string;
  shape: EventShape;
  /**
   * Empty the tables before each slice (timed workloads) or repetition
   * (bulk ones): the first appends after the tables were created or
   * emptied, when PostgreSQL knows nothing of them yet.
   */
  fresh: boolean;
}

/** Store-chosen ids, no metadata, tables that have a life. */
export const BASELINE: AppendVariant = { suffix: "", shape: BARE, fresh: false };

/** The variants beyond the baseline, in the order they run. */
export const VARIANTS: readonly AppendVariant[] = [
  { suffix: "/i", shape: { callerIds: true, metadata: false }, fresh: false },
  { suffix: "/if", shape: { callerIds: true, metadata: false }, fresh: true },
  { suffix: "/im", shape: { callerIds: true, metadata: true }, fresh: false },
];

/** The workload id of `variant`: `W1-1/if`. */
export function variantId(id: string, variant: AppendVariant): string {
  return `${id}${variant.suffix}`;
}

/** The workload title of `variant`. */
export function variantTitle(title: string, variant: AppendVariant): string {
  return variant === BASELINE
    ? title
    : `${title}; ${describeShape(variant.shape)}${variant.fresh ? "; fresh tables" : ""}`;
}
