/**
 * What the schema commands (`migrate-gen`, `migrate`) share: flag mistakes
 * as {@linkcode UsageError}s, and the table-name flags.
 *
 * @module
 */

import { PupsourcingError } from "./es/errors.ts";
import type { TableNames } from "./postgres/tables.ts";

/** A bad command line: the command prints it with its usage and exits 2. */
export class UsageError extends PupsourcingError {}

/** The flags that name the tables, as `parseArgs` options. */
export const TABLE_FLAGS: {
  schema: { type: "string" };
  "events-table": { type: "string" };
  "aggregate-heads-table": { type: "string" };
  "checkpoints-table": { type: "string" };
  "log-offset-table": { type: "string" };
  "snapshots-table": { type: "string" };
  "parked-events-table": { type: "string" };
  "group-members-table": { type: "string" };
} = {
  schema: { type: "string" },
  "events-table": { type: "string" },
  "aggregate-heads-table": { type: "string" },
  "checkpoints-table": { type: "string" },
  "log-offset-table": { type: "string" },
  "snapshots-table": { type: "string" },
  "parked-events-table": { type: "string" },
  "group-members-table": { type: "string" },
};

/** The usage lines of {@linkcode TABLE_FLAGS}. */
export const TABLE_FLAGS_USAGE =
  `  --schema <name>                schema for every table (default: none, the search_path)
  --events-table <name>          default: events
  --aggregate-heads-table <name> default: aggregate_heads
  --checkpoints-table <name>     default: projection_checkpoints
  --log-offset-table <name>      default: pupsourcing_log_offset
  --snapshots-table <name>       default: snapshots
  --parked-events-table <name>   default: projection_parked_events
  --group-members-table <name>   default: projection_group_members
`;

/**
 * Returns what `parse` (a `parseArgs` call) returns, its errors (an unknown
 * flag, a missing value) turned into {@linkcode UsageError}s.
 */
export function usageErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The table names given by {@linkcode TABLE_FLAGS}; unset ones stay default. */
export function tableNames(flags: {
  schema?: string;
  "events-table"?: string;
  "aggregate-heads-table"?: string;
  "checkpoints-table"?: string;
  "log-offset-table"?: string;
  "snapshots-table"?: string;
  "parked-events-table"?: string;
  "group-members-table"?: string;
}): TableNames {
  return {
    schema: flags.schema,
    eventsTable: flags["events-table"],
    aggregateHeadsTable: flags["aggregate-heads-table"],
    checkpointsTable: flags["checkpoints-table"],
    logOffsetTable: flags["log-offset-table"],
    snapshotsTable: flags["snapshots-table"],
    parkedEventsTable: flags["parked-events-table"],
    groupMembersTable: flags["group-members-table"],
  };
}
