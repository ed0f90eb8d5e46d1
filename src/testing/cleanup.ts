/**
 * Removes a throwaway server however its process ends.
 *
 * Two mechanisms, so that every path is covered on Deno, Node and Bun:
 *
 * - A watchdog: a small `sh` process in its own session that holds the read
 *   end of a pipe whose write end only this process has. When this process
 *   ends, however it ends (a normal exit, `Deno.exit()`, an uncaught error,
 *   Ctrl-C, SIGTERM, even SIGKILL), the kernel closes the pipe; the watchdog
 *   reads end-of-file, stops the server (immediate shutdown) and deletes
 *   its folder. It ignores the terminal's signals, and so does the server,
 *   which runs in its own session as well: Ctrl-C reaches only this
 *   process, and a signal handler of the application can still use the
 *   database while it shuts down.
 * - A synchronous hook on `exit` (Node, Bun and Deno's `process.exit()` and
 *   natural end; Node and Bun also after an uncaught error) and `unload`
 *   (Deno, which fires it for `Deno.exit()` too): the server is stopped and
 *   its folder deleted before the process is gone, without waiting for the
 *   watchdog.
 *
 * No signal handler is installed: a handler would change what Ctrl-C does
 * for the whole application (Node and Deno do not exit on a signal that has
 * a listener). SIGINT and SIGTERM keep their default action, and the
 * process ends with them as it would without a test database (a shell
 * reports 130 and 143); a handler of the application's own runs as usual.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/**
 * The watchdog. Reads lines `initdb <pid>`, `postgres <pid>` or `stopped -`
 * (the last one read says what runs); at end-of-file it stops that process
 * and deletes the folder `$1`. A postgres process is signalled only while
 * its `postmaster.pid` exists, so a recycled pid is never hit.
 */
const WATCHDOG = `
trap '' INT TERM HUP QUIT PIPE
root=$1
kind=stopped
pid=
while read -r k p; do kind=$k; pid=$p; done
case $kind in
  initdb)
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2 ;;
  postgres)
    lock="$root/data/postmaster.pid"
    if [ -f "$lock" ]; then
      kill -QUIT "$pid" 2>/dev/null
      i=0
      while [ -f "$lock" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
      [ -f "$lock" ] && kill -KILL "$pid" 2>/dev/null
    fi ;;
esac
rm -rf "$root"
`;

/** What one server leaves behind, and how to remove it at once. */
export class ServerGuard {
  #watchdog: ChildProcess | undefined;
  #helper: ChildProcess | undefined;
  #server: ChildProcess | undefined;
  #done = false;

  constructor(readonly root: string) {
    if (process.platform !== "win32") {
      try {
        const watchdog = spawn("sh", ["-c", WATCHDOG, "pupsourcing-watchdog", root], {
          detached: true,
          stdio: ["pipe", "ignore", "ignore"],
        });
        watchdog.on("error", () => {});
        watchdog.stdin?.on("error", () => {});
        // Neither the watchdog nor its pipe keeps this process alive.
        watchdog.unref();
        (watchdog.stdin as { unref?: () => void } | null)?.unref?.();
        this.#watchdog = watchdog;
      } catch {
        // No `sh`: the exit hooks still clean up.
      }
    }
    guards.add(this);
    installHooks();
  }

  /** `initdb` runs: a process to kill if this process ends now. */
  helper(child: ChildProcess): void {
    this.#helper = child;
    this.#tell(`initdb ${child.pid}`);
  }

  /** `initdb` is done. */
  helperDone(): void {
    this.#helper = undefined;
    this.#tell("stopped -");
  }

  /** The server runs. */
  server(child: ChildProcess): void {
    this.#server = child;
    this.#tell(`postgres ${child.pid}`);
  }

  /** The server has stopped (its `exit` event was seen). */
  serverStopped(): void {
    this.#server = undefined;
    this.#tell("stopped -");
  }

  /** The folder is gone: the watchdog and the hooks have nothing left to do. */
  release(): void {
    this.#done = true;
    guards.delete(this);
    this.#watchdog?.kill("SIGKILL");
  }

  /** Stops everything and deletes the folder, synchronously (an exit hook). */
  cleanNow(): void {
    if (this.#done) return;
    this.#done = true;
    guards.delete(this);
    try {
      this.#helper?.kill("SIGKILL");
      const server = this.#server;
      if (server) {
        const lock = join(this.root, "data", "postmaster.pid");
        // Immediate shutdown: the server is thrown away, nothing to flush.
        server.kill("SIGQUIT");
        // The event loop no longer runs, so no exit event will come: the
        // server removes its lock file as its last step.
        const deadline = Date.now() + 5_000;
        while (existsSync(lock) && Date.now() < deadline) sleep(10);
        if (existsSync(lock)) server.kill("SIGKILL");
      }
      rmSync(this.root, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      // An exit hook must not throw; the watchdog still runs.
      return;
    }
    this.#watchdog?.kill("SIGKILL");
  }

  #tell(line: string): void {
    const stdin = this.#watchdog?.stdin;
    if (stdin && !stdin.destroyed) stdin.write(`${line}\n`);
  }
}

const guards = new Set<ServerGuard>();
let hooked = false;

function cleanAll(): void {
  for (const guard of [...guards]) guard.cleanNow();
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", cleanAll);
  // Deno fires `unload` for `Deno.exit()`, which skips `exit` listeners.
  const target = globalThis as {
    addEventListener?: (type: string, listener: () => void) => void;
  };
  target.addEventListener?.("unload", cleanAll);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
