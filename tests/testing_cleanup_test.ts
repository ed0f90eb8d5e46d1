/**
 * The throwaway server of `./testing` never outlives its process: whether
 * the process gets SIGINT (Ctrl-C), SIGTERM or SIGKILL, calls `Deno.exit()`
 * or `process.exit()`, dies of an uncaught error or simply ends without
 * `stop()`, the postgres process is gone and its folder deleted soon after.
 * Each path runs a real child process (tests/fixtures/testing_server_child.ts)
 * under the runtime running this test.
 */

import { before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { setTimeout as delay } from "node:timers/promises";
import { fixtureCommand } from "./_child.ts";

interface Started {
  child: ChildProcess;
  root: string;
  pid: number;
  output: () => string;
}

/** Starts the fixture and resolves once it has printed its server's folder and pid. */
function start(mode: string, options: { detached?: boolean } = {}): Promise<Started> {
  const [command, args] = fixtureCommand("testing_server_child", [mode]);
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const child = spawn(command, args, {
    env,
    detached: options.detached ?? false,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;
  child.stderr!.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`the fixture (${mode}) did not report its server within 120 s\n${output()}`),
      );
    }, 120_000);
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line && stdout.includes("}\n")) {
        clearTimeout(timer);
        const { root, pid } = JSON.parse(line);
        resolve({ child, root, pid, output });
      }
    });
    // "close", not "exit": "exit" may come before the last of stdout.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the fixture (${mode}) ended (${code ?? signal}) early\n${output()}`));
    });
  });
}

/** Resolves to the exit code and signal of `child`, failing after `ms`. */
function exited(
  started: Started,
  ms = 30_000,
): Promise<{ code: number | null; signal: string | null }> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the fixture did not exit within ${ms} ms\n${started.output()}`));
    }, ms);
    // "close", not "exit": "exit" may come before the last of stdout.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie that nobody has reaped yet no longer runs.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Fails unless the postgres process is gone and its folder deleted within `ms`. */
async function assertCleanedUp(started: Started, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!running(started.pid) && !existsSync(started.root)) return;
    await delay(50);
  }
  const left = [
    running(started.pid) ? `postgres (pid ${started.pid}) still runs` : "",
    existsSync(started.root) ? `${started.root} still exists` : "",
  ].filter(Boolean).join(" and ");
  if (running(started.pid)) process.kill(started.pid, "SIGKILL");
  assert.fail(`${left} ${ms} ms after the process ended\n${started.output()}`);
}

interface Ended {
  started: Started;
  code: number | null;
  signal: string | null;
}

/** At most three fixtures at a time: each starts a server, and machines are busy. */
let slots = 3;
const waiting: (() => void)[] = [];

async function limited<T>(run: () => Promise<T>): Promise<T> {
  if (slots === 0) await new Promise<void>((resolve) => waiting.push(resolve));
  else slots--;
  try {
    return await run();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else slots++;
  }
}

/**
 * Starts the fixture in `mode`, ends it with `act` once it runs a server,
 * and resolves once it has exited. The scenarios run side by side (a
 * server takes seconds to start on a busy machine); each test awaits its own.
 */
function scenario(
  mode: string,
  act: (started: Started) => void = () => {},
  options: { detached?: boolean } = {},
): Promise<Ended> {
  const ended = limited(async () => {
    const started = await start(mode, options);
    act(started);
    return { started, ...await exited(started) };
  });
  ended.catch(() => {}); // reported by the test that awaits it
  return ended;
}

describe("the throwaway server is removed when its process ends", () => {
  const scenarios: Record<string, Promise<Ended>> = {};
  before(() => {
    Object.assign(scenarios, {
      sigint: scenario("wait", ({ child }) => child.kill("SIGINT")),
      sigterm: scenario("wait", ({ child }) => child.kill("SIGTERM")),
      sigkill: scenario("wait", ({ child }) => child.kill("SIGKILL")),
      // A terminal's Ctrl-C signals every process of the foreground group.
      group: scenario("handler", ({ child }) => process.kill(-child.pid!, "SIGINT"), {
        detached: true,
      }),
      denoExit: scenario("deno-exit"),
      processExit: scenario("process-exit"),
      uncaught: scenario("throw"),
      natural: scenario("natural"),
    });
  });

  it("on SIGINT, and the process still ends by SIGINT", async () => {
    const { started, code, signal } = await scenarios.sigint;
    assert.ok(signal === "SIGINT" || code === 130, `expected SIGINT (130), got ${code ?? signal}`);
    await assertCleanedUp(started);
  });

  it("on SIGTERM, and the process still ends by SIGTERM", async () => {
    const { started, code, signal } = await scenarios.sigterm;
    assert.ok(
      signal === "SIGTERM" || code === 143,
      `expected SIGTERM (143), got ${code ?? signal}`,
    );
    await assertCleanedUp(started);
  });

  it("on SIGKILL, which no handler can catch", async () => {
    const { started, signal } = await scenarios.sigkill;
    assert.equal(signal, "SIGKILL");
    await assertCleanedUp(started);
  });

  it("on Ctrl-C to the whole process group, after the application's own handler used it", async () => {
    const { started, code } = await scenarios.group;
    assert.equal(code, 0, started.output());
    assert.match(started.output(), /handled: 1/);
    await assertCleanedUp(started);
  });

  it("on Deno.exit() (process.exit() on Node and Bun)", async () => {
    const { started, code } = await scenarios.denoExit;
    assert.equal(code, 3, started.output());
    await assertCleanedUp(started);
  });

  it("on process.exit()", async () => {
    const { started, code } = await scenarios.processExit;
    assert.equal(code, 4, started.output());
    await assertCleanedUp(started);
  });

  it("on an uncaught error", async () => {
    const { started, code } = await scenarios.uncaught;
    assert.equal(code, 1, started.output());
    assert.match(started.output(), /fixture: an uncaught error/);
    await assertCleanedUp(started);
  });

  it("when the program ends without stop(), which does not keep it alive", async () => {
    const { started, code } = await scenarios.natural;
    assert.equal(code, 0, started.output());
    await assertCleanedUp(started);
  });
});
