/**
 * Private PostgreSQL clusters for the tests that move a database from one
 * cluster to another: each cluster is its own server (its own transaction
 * id counter), started from the binaries of the version under test
 * (`PUPSOURCING_PG_BIN`, which CI sets for each leg; by default the
 * embedded PostgreSQL 18), whatever `DATABASE_URL` says.
 *
 * @module
 */

import { execFile } from "node:child_process";
import { access, chown, mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { freePort } from "./_ports.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pipeline } from "node:stream/promises";
import postgres from "postgres";
import {
  type AppendResult,
  type PersistedEvent,
  TransactionIdRegressionError,
} from "../src/es/mod.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import type { Projection } from "../src/projection/mod.ts";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";

/** A private cluster and a client on its `postgres` database. */
export interface Cluster {
  url: string;
  port: number;
  sql: postgres.Sql;
  /** The server's major version (13, 15, 18, ...). */
  major: number;
  /** Opens another client on this cluster; closed by `stop()`. */
  client(options?: postgres.Options<Record<string, never>>): postgres.Sql;
  stop(): Promise<void>;
}

/** Starts a cluster with extra server settings (`wal_level`, ...). */
export async function startCluster(settings: Record<string, string> = {}): Promise<Cluster> {
  const server: TestDatabase = await startTestDatabase({ ignoreDatabaseUrl: true, settings });
  const clients: postgres.Sql[] = [];
  const client = (options: postgres.Options<Record<string, never>> = {}) => {
    const sql = postgres(server.url, { onnotice: () => {}, ...options });
    clients.push(sql);
    return sql;
  };
  const sql = client();
  const [{ major }] = await sql`select current_setting('server_version_num')::int / 10000 as major`;
  return {
    url: server.url,
    port: Number(new URL(server.url).port),
    sql,
    major,
    client,
    async stop() {
      await Promise.all(clients.map((c) => c.end({ timeout: 1 })));
      await server.stop();
    },
  };
}

/**
 * The folder of the binaries under test when it holds the tools `tools`
 * (`pg_resetwal`, `pg_dump`, ...): Debian's PostgreSQL 15 has them all,
 * the embedded packages only `initdb`, `pg_ctl` and `postgres`.
 * `undefined` otherwise, so a test can skip, naming what is missing.
 */
export async function binariesWith(tools: string[]): Promise<string | undefined> {
  const bin = process.env.PUPSOURCING_PG_BIN;
  if (!bin) return undefined;
  try {
    for (const tool of tools) await access(join(bin, tool));
    return bin;
  } catch {
    return undefined;
  }
}

/** Runs a PostgreSQL tool (as `postgres` when this process is root); rejects with its output. */
export function runTool(bin: string, tool: string, args: string[]): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [command, all] = asRoot
    ? ["runuser", ["-u", "postgres", "--", join(bin, tool), ...args]]
    : [join(bin, tool), args];
  return new Promise((resolve, reject) => {
    execFile(command, all, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${tool} ${args.join(" ")} failed: ${stderr || error}`));
      else resolve(stdout);
    });
  });
}

/** A cluster run with `pg_ctl` from a data folder of its own. */
export interface ManagedCluster extends Cluster {
  /** Its data folder. */
  data: string;
  /** Stops it as a planned switch-over does: `pg_ctl -m fast stop`. */
  stopFast(): Promise<void>;
  /** Promotes a standby to a primary: `pg_ctl promote`. */
  promote(): Promise<void>;
}

/**
 * Starts a cluster from `bin` with `pg_ctl`, after setting its
 * transaction id epoch with `pg_resetwal -e` (a long-lived production
 * database's ids are past 2^32): its ids start at `epoch * 2^32`.
 */
export function startClusterWithEpoch(bin: string, epoch: number): Promise<ManagedCluster> {
  return startManaged(bin, async (data) => {
    await runTool(bin, "initdb", ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]);
    if (epoch !== 0) await runTool(bin, "pg_resetwal", ["-e", String(epoch), data]);
  });
}

/** Starts a streaming physical standby of `primary` (`pg_basebackup -R`). */
export function startStandby(bin: string, primary: Cluster): Promise<ManagedCluster> {
  return startManaged(bin, async (data) => {
    await runTool(bin, "pg_basebackup", [
      "-h",
      "127.0.0.1",
      "-p",
      String(primary.port),
      "-U",
      "postgres",
      "-D",
      data,
      "-R",
      "-X",
      "stream",
    ]);
  });
}

async function startManaged(
  bin: string,
  create: (data: string) => Promise<void>,
): Promise<ManagedCluster> {
  const root = await mkdtemp(join(tmpdir(), "pupsourcing-cluster-"));
  if (process.getuid?.() === 0) {
    const [uid, gid] = await Promise.all(
      ["-u", "-g"].map((flag) =>
        new Promise<number>((resolve, reject) =>
          execFile("id", [flag, "postgres"], (e, out) => (e ? reject(e) : resolve(Number(out))))
        )
      ),
    );
    await chown(root, uid, gid);
  }
  const data = join(root, "data");
  await create(data);
  const port = await freePort();
  await runTool(bin, "pg_ctl", [
    "-D",
    data,
    "-l",
    join(root, "server.log"),
    "-w",
    "-t",
    "60",
    "-o",
    `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`,
    "start",
  ]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const clients: postgres.Sql[] = [];
  const client = (options: postgres.Options<Record<string, never>> = {}) => {
    const sql = postgres(url, { onnotice: () => {}, ...options });
    clients.push(sql);
    return sql;
  };
  const sql = client();
  const [{ major }] = await sql`select current_setting('server_version_num')::int / 10000 as major`;
  return {
    url,
    port,
    sql,
    major,
    client,
    data,
    async stopFast() {
      await runTool(bin, "pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
    },
    async promote() {
      await runTool(bin, "pg_ctl", ["-D", data, "-w", "promote"]);
    },
    async stop() {
      await Promise.all(clients.map((c) => c.end({ timeout: 1 })));
      await runTool(bin, "pg_ctl", ["-D", data, "-m", "immediate", "stop"]).catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** `pg_dump` of `schema` from `from`, `pg_restore` into `to` (which lacks the schema). */
export async function dumpAndRestore(
  bin: string,
  from: Cluster,
  to: Cluster,
  schema: string,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "pupsourcing-dump-"));
  const file = join(dir, "app.dump");
  try {
    // Written and read by the tools' user: the folder is theirs.
    if (process.getuid?.() === 0) await runChmod(dir);
    const at = (c: Cluster) => ["-h", "127.0.0.1", "-p", String(c.port), "-U", "postgres"];
    await runTool(bin, "pg_dump", [...at(from), "-Fc", "-n", schema, "-f", file, "postgres"]);
    await runTool(bin, "pg_restore", [...at(to), "-d", "postgres", file]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runChmod(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("chmod", ["777", dir], (e) => (e ? reject(e) : resolve()))
  );
}

/** The next transaction id the cluster will hand out. */
export async function nextTransactionId(sql: postgres.Sql): Promise<bigint> {
  const [{ next }] = await sql`select pg_snapshot_xmax(pg_current_snapshot())::text as next`;
  return BigInt(next);
}

/**
 * Consumes `count` transaction ids quickly: each loop iteration is a
 * subtransaction that writes, so it takes an id of its own (about 70k per
 * second here, where one transaction per round trip takes a few thousand).
 */
export async function burnTransactionIds(sql: postgres.Sql, count: number): Promise<void> {
  await sql.unsafe(`create temp table if not exists burn (x int)`);
  await sql.unsafe(`do $$ begin
    for i in 1..${Math.floor(count)} loop
      begin insert into burn values (i); exception when others then null; end;
    end loop; end $$`);
}

/**
 * What a dump and restore does to a schema's data: every table's rows
 * copied as they are (COPY out of the source, COPY into the target, whose
 * tables exist already and are emptied first), then every sequence set to
 * the source's value. The source should be quiet while it runs.
 */
export async function copySchema(
  from: postgres.Sql,
  to: postgres.Sql,
  schema: string,
): Promise<void> {
  const tables = await from`
    select table_name as name from information_schema.tables
    where table_schema = ${schema} and table_type = 'BASE TABLE' order by table_name`;
  for (const { name } of tables) {
    const qualified = `${schema}.${name}`;
    await to`delete from ${to(qualified)}`;
    const out = await from`copy ${from(qualified)} to stdout`.readable();
    const into = await to`copy ${to(qualified)} from stdin`.writable();
    await pipeline(out, into);
  }
  const sequences = await from`
    select sequence_name as name from information_schema.sequences where sequence_schema = ${schema}`;
  for (const { name } of sequences) {
    const qualified = `"${schema}"."${name}"`;
    const [row] = await from.unsafe(`select last_value::text, is_called from ${qualified}`);
    await to`select setval(${qualified}, ${row.last_value}::int8, ${row.is_called})`;
  }
}

/**
 * A TCP proxy on a fixed local port that forwards to one cluster and can
 * be switched to another: the database is replaced under the same address.
 * A switch closes every open connection, as a failover does.
 */
export class SwitchingProxy {
  #server: Server;
  #target: number;
  #sockets = new Set<Socket>();
  /** The proxy's port once {@linkcode SwitchingProxy.listen} resolved. */
  port = 0;

  constructor(target: number) {
    this.#target = target;
    this.#server = createServer((client) => {
      const upstream = createConnection({ host: "127.0.0.1", port: this.#target });
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  /** Starts listening on a free port. */
  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.listen(0, "127.0.0.1", () => {
        this.port = (this.#server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  /** The URL of the `postgres` database through the proxy. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** Sends new connections to `port` and closes the open ones. */
  switchTo(port: number): void {
    this.#target = port;
    for (const socket of this.#sockets) socket.destroy();
  }

  /** Closes every connection and stops listening. */
  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** The schema the move tests keep the store and the read model in. */
export const SCHEMA = "app";

/** The store of the move tests, in {@linkcode SCHEMA}. */
export function moveStore(): PostgresStore {
  return new PostgresStore({ schema: SCHEMA });
}

/**
 * Creates the read model `app.applied`, which records every application
 * in order: `seq` is the order of application, so a repeat or a
 * reordering shows.
 */
export async function createAppliedLog(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`create table ${SCHEMA}.applied (
    seq bigserial primary key, projection text not null, event_id uuid not null,
    aggregate_id text not null, aggregate_version bigint not null)`);
}

/** A projection that records each event it applies in `app.applied`. */
export function recording(name: string): Projection {
  return {
    name,
    async handle(event, tx) {
      await tx.unsafe(
        `insert into ${SCHEMA}.applied (projection, event_id, aggregate_id, aggregate_version)
         values ($1, $2, $3, $4)`,
        [name, event.eventId, event.aggregateId, String(event.aggregateVersion)],
      );
    },
  };
}

/** The event ids `name` applied, in the order it applied them. */
export async function appliedBy(sql: postgres.Sql, name: string): Promise<string[]> {
  const rows = await sql`select event_id from ${sql(`${SCHEMA}.applied`)}
    where projection = ${name} order by seq`;
  return rows.map((r) => r.event_id);
}

/** Appends `n` events to the account `id`. */
export function appendTo(
  sql: postgres.Sql,
  store: PostgresStore,
  id: string,
  n: number,
): Promise<AppendResult> {
  return store.append(
    sql,
    Array.from({ length: n }, (_, i) => ({
      aggregateType: "Account",
      aggregateId: id,
      eventType: "Deposited",
      payload: new TextEncoder().encode(JSON.stringify({ i })),
    })),
  );
}

/** A refusal of a moved log that names the rebase. */
export function isRegression(error: unknown): boolean {
  return error instanceof TransactionIdRegressionError && /migrate --rebase/.test(error.message);
}

/** The ids of `events`, in order. */
export function ids(events: readonly PersistedEvent[]): string[] {
  return events.map((e) => e.eventId);
}
