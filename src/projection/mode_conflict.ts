/**
 * The error of a projection run both ways at once: group members next to
 * statically partitioned workers.
 *
 * @module
 */

import { PupsourcingError } from "../es/errors.ts";

/**
 * A projection's segments met workers of the other mode: a group member
 * found a segment a static worker (`partitionKey`/`totalPartitions`)
 * processed within its lease time, or a static worker found a segment
 * leased by a live group member. The two modes never share a projection:
 * stop every worker of one mode (a group member's leases run out
 * `leaseMs` after it stops; a graceful stop releases them at once) before
 * starting the other. Nothing was applied by the run that threw.
 *
 * @example
 * ```ts
 * import { PartitioningModeError } from "@getpup/pupsourcing/projection";
 *
 * const error = new PartitioningModeError("orders", "group", 3, "static workers");
 * console.log(error.segment, error.mode); // 3 "group"
 * ```
 */
export class PartitioningModeError extends PupsourcingError {
  /** The projection's name. */
  readonly projection: string;
  /** The mode of the worker that threw. */
  readonly mode: "group" | "static";
  /** The segment where the other mode was met. */
  readonly segment: number;
  /** Who holds it: a group member's id, or `"static workers"`. */
  readonly holder: string;

  /** Creates the error for a worker in `mode` that met `holder` on `segment`. */
  constructor(projection: string, mode: "group" | "static", segment: number, holder: string) {
    const other = mode === "group" ? "static partitioning" : "group mode";
    super(
      `Projection "${projection}": expected only ${
        mode === "group" ? "group members" : "static workers"
      } ` +
        `on its segments, got segment ${segment} held by ${
          mode === "group" ? holder : `group member "${holder}"`
        } (${other}). Run a projection in one mode: stop the other mode's workers first`,
    );
    this.projection = projection;
    this.mode = mode;
    this.segment = segment;
    this.holder = holder;
  }
}
