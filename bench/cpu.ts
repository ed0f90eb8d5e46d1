/**
 * The CPU time a sample costs: in the benchmark's own process (the client:
 * the library or the hand-written ceiling, and postgres.js) and in the
 * PostgreSQL server, every backend included. Client and server share the
 * machine's cores, so a ratio alone cannot say whether a variant is slower
 * for its own work or for want of a core: the CPU per unit of work can.
 *
 * The server's time is read from `/proc` (Linux), for a server on this
 * machine: the postmaster's own time, the time of its children that have
 * exited (which the kernel adds to it once they are reaped), and that of
 * its live children. Elsewhere, or for a server on another host, only the
 * client's is known.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";

/** CPU seconds, of the client and (when known) of the server. */
export interface CpuTime {
  client: number;
  server?: number;
}

/** `/proc` counts CPU time in clock ticks of 1/100 s (USER_HZ, fixed at 100 on Linux). */
const TICKS_PER_SECOND = 100;

let postmaster: number | undefined;

/**
 * Counts the server of the backend `backendPid` (from `pg_backend_pid()`)
 * from now on: its postmaster is the backend's parent. A pid that is not
 * a PostgreSQL process here (a server on another host) leaves the server
 * uncounted.
 */
export function watchServer(backendPid: number): void {
  const backend = processStat(backendPid);
  const parent = backend && processStat(backend.ppid);
  postmaster = backend?.comm === "postgres" && parent?.comm === "postgres"
    ? backend.ppid
    : undefined;
}

/** The CPU seconds spent so far. */
export function cpuNow(): CpuTime {
  const { user, system } = process.cpuUsage();
  const server = serverSeconds();
  return { client: (user + system) / 1e6, ...(server === undefined ? {} : { server }) };
}

/** The CPU seconds spent since `start` (from {@linkcode cpuNow}). */
export function cpuSince(start: CpuTime): CpuTime {
  const now = cpuNow();
  const client = now.client - start.client;
  return now.server === undefined || start.server === undefined
    ? { client }
    : { client, server: now.server - start.server };
}

/** The server's CPU seconds: the postmaster, its exited children and its live ones. */
function serverSeconds(): number | undefined {
  if (postmaster === undefined) return undefined;
  const own = processStat(postmaster);
  if (!own) return undefined;
  let ticks = own.utime + own.stime + own.cutime + own.cstime;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const child = processStat(Number(entry));
    if (child?.ppid === postmaster) ticks += child.utime + child.stime;
  }
  return ticks / TICKS_PER_SECOND;
}

interface ProcessStat {
  comm: string;
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

/** `/proc/<pid>/stat`, or `undefined` when there is no such process (or no `/proc`). */
function processStat(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  return {
    comm: text.slice(open + 1, close),
    ppid: Number(fields[1]),
    utime: Number(fields[11]),
    stime: Number(fields[12]),
    cutime: Number(fields[13]),
    cstime: Number(fields[14]),
  };
}
