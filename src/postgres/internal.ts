/**
 * What `src/projection` builds on, besides the public face of
 * `./mod.ts`: the log reader, the client helpers and the driver
 * workarounds. Not part of the package's API: the projection reaches the
 * database only through this file and `./mod.ts` (checked by
 * tests/architecture_test.ts), and never names the events table itself.
 *
 * @module
 */

export { arrayLiteral, type Db, requireClient, table, toBigInt } from "./db.ts";
export { beginGuarded } from "./driver.ts";
export { belowHorizon, type LagScope, type SegmentLag, segmentLag } from "./lag.ts";
export {
  assertCursorInCluster,
  int4Array,
  lockedShareStatement,
  type LogScope,
  pendingColumn,
  readAtPositions,
  readLockedShare,
  regressionGuard,
  type ShareLock,
  sizeClass,
  tipColumns,
  tipOf,
} from "./log.ts";
export { isConnectionLoss } from "./connection_loss.ts";
export { missingTable } from "./missing_table.ts";
export { regressionOf } from "./order.ts";
export type { ResolvedTables } from "./tables.ts";
