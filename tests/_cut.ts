/**
 * A client whose connection is cut just as a chosen statement is sent:
 * the statement never reaches the server, and the caller gets the
 * connection's error, as when the server goes away between two statements.
 *
 * @module
 */

import net from "node:net";
import type postgres from "postgres";
import type { TestDb } from "./_db.ts";

/** A one-connection client, and how to arm the cut. */
export interface CuttingClient {
  sql: postgres.Sql;
  /** Cuts the connection as the next statement whose text starts with `prefix` is sent. */
  cutAt(prefix: string): void;
  /** How many times the connection was cut. */
  cuts(): number;
}

/** Opens a {@linkcode CuttingClient} on the test database; closed with it. */
export async function cuttingClient(db: TestDb): Promise<CuttingClient> {
  const { hostname, port } = new URL(db.url);
  let socket: net.Socket | undefined;
  let armed: string | undefined;
  let cuts = 0;
  const sql = db.client(
    {
      max: 1,
      // postgres.js's `socket` option (its types leave it out): the client's own socket.
      socket: () => socket = net.connect(Number(port), hostname),
      // Called as each statement is written, before it leaves the process.
      debug: (_connection: number, query: string) => {
        if (armed !== undefined && query.trimStart().startsWith(armed)) {
          armed = undefined;
          cuts++;
          socket!.destroy();
        }
      },
    } as Parameters<TestDb["client"]>[0],
  );
  await sql`select 1`;
  return { sql, cutAt: (prefix) => armed = prefix, cuts: () => cuts };
}
