/**
 * Starts and stops the throwaway PostgreSQL server.
 *
 * @module
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmod, chown, cp, mkdtemp, rename, rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { checkOptions } from "../es/options.ts";
import { findBinaries } from "./binaries.ts";
import { ServerGuard } from "./cleanup.ts";
import { checkDatabaseUrl, databaseUrlMessage } from "./database_url.ts";

/**
 * A running PostgreSQL to test against.
 *
 * @example
 * ```ts ignore
 * import { startTestDatabase } from "@getpup/pupsourcing/testing";
 *
 * const server = await startTestDatabase();
 * console.log(server.url); // postgres://postgres@127.0.0.1:54321/postgres
 * await server.stop();
 * ```
 */
export interface TestDatabase {
  /** A connection URL for the server's `postgres` database. */
  readonly url: string;
  /** `true` when the server was started here, `false` for `DATABASE_URL`. */
  readonly embedded: boolean;
  /**
   * Creates a new, empty database on the server and returns its URL: one
   * per test keeps tests independent.
   */
  createDatabase(): Promise<string>;
  /**
   * Drops a database that {@linkcode TestDatabase.createDatabase} created,
   * closing its remaining connections: on a shared `DATABASE_URL` server,
   * leave nothing behind.
   */
  dropDatabase(url: string): Promise<void>;
  /** Drops nothing on `DATABASE_URL`; stops and deletes a server started here. */
  stop(): Promise<void>;
}

/**
 * Options of {@linkcode startTestDatabase}.
 *
 * @example Keep PostgreSQL's durability defaults, for benchmarks
 * ```ts
 * import type { TestDatabaseOptions } from "@getpup/pupsourcing/testing";
 *
 * const options: TestDatabaseOptions = { settings: { fsync: "on" } };
 * ```
 */
export interface TestDatabaseOptions {
  /**
   * Server settings (`-c name=value`). Defaults favour speed over
   * durability: `fsync=off`, `full_page_writes=off`, `max_connections=200`.
   */
  settings?: Record<string, string>;
  /** Ignore `DATABASE_URL` and start a server anyway. Default `false`. */
  ignoreDatabaseUrl?: boolean;
}

const DEFAULT_SETTINGS: Record<string, string> = {
  fsync: "off",
  full_page_writes: "off",
  max_connections: "200",
};

/**
 * Returns `DATABASE_URL` when it is set; otherwise starts a PostgreSQL
 * server in a temporary folder and returns once it accepts connections.
 *
 * A `DATABASE_URL` that cannot be reached is an error that names it (host
 * and port, never the password) and says how to unset it. A server
 * started here is removed however the process ends: on `stop()`, at exit,
 * on `Deno.exit()`, an uncaught error, SIGINT, SIGTERM, and (within a
 * second or so, by a watchdog process) SIGKILL.
 *
 * @example
 * ```ts ignore
 * import postgres from "postgres";
 * import { startTestDatabase } from "@getpup/pupsourcing/testing";
 *
 * const server = await startTestDatabase();
 * const sql = postgres(server.url);
 * console.log(await sql`select 1 as one`);
 * await sql.end();
 * await server.stop();
 * ```
 */
export async function startTestDatabase(options?: TestDatabaseOptions): Promise<TestDatabase> {
  const { settings, ignoreDatabaseUrl } = checkOptions("startTestDatabase options", options, [
    "settings",
    "ignoreDatabaseUrl",
  ]);
  const external = process.env.DATABASE_URL;
  if (external && !ignoreDatabaseUrl) {
    await checkDatabaseUrl(external);
    return {
      url: external,
      embedded: false,
      createDatabase: async () => {
        try {
          return await createDatabase(external);
        } catch (error) {
          throw new Error(databaseUrlMessage(external, error), { cause: error });
        }
      },
      dropDatabase: (target) => dropDatabase(external, target),
      stop: async () => {},
    };
  }
  return await startServer({ ...DEFAULT_SETTINGS, ...settings });
}

async function startServer(settings: Record<string, string>): Promise<TestDatabase> {
  const owner = serverUser();
  const bin = await reachableBinaries(await findBinaries(), owner);
  const root = await mkdtemp(join(tmpdir(), "pupsourcing-pg-"));
  if (owner) await chown(root, owner.uid, owner.gid);
  const dataDir = join(root, "data");
  // Removes the server and its folder however this process ends: see cleanup.ts.
  const guard = new ServerGuard(root);
  // The server's user must be able to enter its working directory too: a
  // project (or a clone in a mktemp folder) may be 0700 to it.
  const spawnAs = owner ? { uid: owner.uid, gid: owner.gid, cwd: root } : {};
  let child: ChildProcess | undefined;
  try {
    await run(
      join(bin, "initdb"),
      [
        "-D",
        dataDir,
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
      ],
      spawnAs,
      guard,
    );
    const port = await freePort();
    const flags = Object.entries({
      ...settings,
      listen_addresses: "127.0.0.1",
      unix_socket_directories: root,
    })
      .flatMap(([name, value]) => ["-c", `${name}=${value}`]);
    child = spawn(join(bin, "postgres"), ["-D", dataDir, "-p", String(port), ...flags], {
      ...spawnAs,
      // Its own session: Ctrl-C on a terminal reaches this process only, and
      // the application's own signal handler can still use the database.
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
    });
    guard.server(child);
    await waitUntilReady(child);
    const server = child;
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    return {
      url,
      embedded: true,
      createDatabase: () => createDatabase(url),
      dropDatabase: (target) => dropDatabase(url, target),
      stop: async () => {
        await stopProcess(server);
        guard.serverStopped();
        await rm(root, { recursive: true, force: true });
        guard.release();
      },
    };
  } catch (error) {
    if (child) await stopProcess(child);
    guard.serverStopped();
    await rm(root, { recursive: true, force: true });
    guard.release();
    throw error;
  }
}

/**
 * As root the server runs as `postgres`, which cannot enter a 0700 folder
 * such as `/root`: Deno's npm cache (`/root/.cache/deno`) or a project
 * under `/root`. Then the binaries are copied into a
 * folder of the temporary directory that it can reach (once per binaries
 * folder: later runs reuse the copy).
 */
async function reachableBinaries(
  bin: string,
  owner: { uid: number; gid: number } | undefined,
): Promise<string> {
  if (!owner || await canExecute(join(bin, "initdb"), owner)) return bin;
  const native = dirname(bin);
  const id = createHash("sha256").update(native).digest("hex").slice(0, 16);
  const staged = join(tmpdir(), `pupsourcing-pg-bin-${id}`);
  if (await canExecute(join(staged, "bin", "initdb"), owner)) return join(staged, "bin");
  const partial = await mkdtemp(`${staged}-partial-`);
  await cp(native, partial, { recursive: true, verbatimSymlinks: true });
  await chmod(partial, 0o755);
  let copy = staged;
  try {
    await rename(partial, staged);
  } catch {
    // Another process staged them first (or a broken copy is in the way).
    copy = await canExecute(join(staged, "bin", "initdb"), owner) ? staged : partial;
    if (copy === staged) await rm(partial, { recursive: true, force: true });
  }
  if (!(await canExecute(join(copy, "bin", "initdb"), owner))) {
    throw new Error(
      `Running as root, PostgreSQL runs as the 'postgres' user, who cannot execute ${bin}/initdb ` +
        `nor its copy in ${copy}: expected ${tmpdir()} to be reachable by it. ` +
        "Set PUPSOURCING_PG_BIN or DATABASE_URL, or run as another user.",
    );
  }
  return join(copy, "bin");
}

function canExecute(path: string, owner: { uid: number; gid: number }): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const child = spawn(path, ["--version"], {
        uid: owner.uid,
        gid: owner.gid,
        cwd: "/",
        stdio: "ignore",
      });
      child.on("error", () => resolve(false));
      child.on("exit", (code) => resolve(code === 0));
    } catch {
      // Deno throws spawn errors (EPERM) at once instead of emitting them.
      resolve(false);
    }
  });
}

/** PostgreSQL refuses to run as root; as root, run it as `postgres`. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch (error) {
    throw new Error(
      "Running as root, PostgreSQL needs a non-root user: expected a 'postgres' user, found none. " +
        "Create it (useradd postgres), run as another user, or set DATABASE_URL.",
      { cause: error },
    );
  }
}

function run(
  command: string,
  args: string[],
  options: { uid?: number; gid?: number; cwd?: string },
  guard: ServerGuard,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    guard.helper(child);
    let output = "";
    child.stdout!.on("data", (chunk) => output += chunk);
    child.stderr!.on("data", (chunk) => output += chunk);
    child.on("error", reject);
    child.on("exit", (code) => {
      guard.helperDone();
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with code ${code}:\n${output}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function waitUntilReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(
      () => fail(new Error(`PostgreSQL did not start within 60 s:\n${log}`)),
      60_000,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    child.stderr!.on("data", (chunk) => {
      log += chunk;
      if (log.includes("ready to accept connections")) {
        clearTimeout(timer);
        // Keep draining the pipe so the server never blocks on a full buffer.
        child.stderr!.removeAllListeners("data");
        child.stderr!.resume();
        // A forgotten stop() must not keep the process alive: when it ends,
        // the exit hooks and the watchdog remove the server (cleanup.ts).
        child.unref();
        (child.stderr as { unref?: () => void }).unref?.();
        resolve();
      }
    });
    child.on("error", fail);
    child.on(
      "exit",
      (code) => fail(new Error(`PostgreSQL exited with code ${code} while starting:\n${log}`)),
    );
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    // Unreferenced once started (a forgotten stop() must not keep the
    // process alive); now the exit event is awaited.
    child.ref();
    // SIGINT is PostgreSQL's fast shutdown: roll back sessions, then stop.
    child.kill("SIGINT");
  });
}

let databaseCounter = 0;

const TEST_DATABASE = /^pupsourcing_test_[0-9a-z_]+$/;

async function createDatabase(url: string): Promise<string> {
  const name = `pupsourcing_test_${process.pid}_${Date.now().toString(36)}_${databaseCounter++}`;
  await asAdmin(url, (admin) => admin`create database ${admin(name)}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  return target.toString();
}

async function dropDatabase(url: string, target: string): Promise<void> {
  const name = decodeURIComponent(new URL(target).pathname.slice(1));
  // Only ever drop what createDatabase made: never a user's database.
  if (!TEST_DATABASE.test(name)) {
    throw new Error(`dropDatabase: expected a database made by createDatabase, got "${name}"`);
  }
  await asAdmin(url, (admin) => admin`drop database if exists ${admin(name)} with (force)`);
}

async function asAdmin(url: string, run: (admin: postgres.Sql) => Promise<unknown>): Promise<void> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await run(admin);
  } finally {
    await admin.end();
  }
}
