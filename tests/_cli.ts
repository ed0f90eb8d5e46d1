/**
 * Running a command's `main` in this process, capturing what it prints, or
 * as a program in a child process.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";

/** A command's exit code and output. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `main(args)` in this process, capturing the text it writes. */
export async function captureCli(
  main: () => Promise<number>,
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const { write: out } = process.stdout;
  const { write: err } = process.stderr;
  // Only the command's text is captured: under `node --test` the runner
  // reports through stdout in binary chunks, which must still get through.
  process.stdout.write =
    ((chunk: unknown, ...rest: unknown[]) =>
      typeof chunk === "string"
        ? (stdout += chunk, true)
        : Reflect.apply(out, process.stdout, [chunk, ...rest])) as typeof out;
  process.stderr.write =
    ((chunk: unknown, ...rest: unknown[]) =>
      typeof chunk === "string"
        ? (stderr += chunk, true)
        : Reflect.apply(err, process.stderr, [chunk, ...rest])) as typeof err;
  try {
    return { code: await main(), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/**
 * Runs `deno run -A script ...args` in `cwd`, failing after `timeoutMs`
 * with a message naming the command.
 */
export function runDenoScript(
  script: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const { cwd, env, timeoutMs = 60_000 } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["run", "-A", script, ...args], {
      cwd,
      env: env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deno run ${script} ${args.join(" ")} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on("data", (chunk) => stdout += chunk);
    child.stderr.on("data", (chunk) => stderr += chunk);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A program running in a child process, its output collected as it comes. */
export interface RunningScript {
  /** What it has printed so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves once stdout or stderr matches `pattern`; fails after `ms` naming `what`. */
  waitFor(pattern: RegExp, what: string, ms?: number): Promise<void>;
  /** Sends a signal. */
  kill(signal: "SIGTERM" | "SIGINT" | "SIGKILL"): void;
  /** Resolves when it has exited; fails after `ms` (and kills it). */
  exited(ms?: number): Promise<CliResult>;
}

/** Starts `deno run -A script ...args` and returns at once. */
export function startDenoScript(
  script: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): RunningScript {
  const child = spawn(process.execPath, ["run", "-A", script, ...args], {
    env: options.env ?? process.env,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  const exit = new Promise<number | null>((resolve) =>
    child.on("close", (code, signal) => {
      if (signal) stderr += `[killed by ${signal}]`;
      resolve(code);
    })
  );
  return {
    output: () => ({ stdout, stderr }),
    async waitFor(pattern, what, ms = 30_000) {
      const deadline = performance.now() + ms;
      while (!pattern.test(stdout) && !pattern.test(stderr)) {
        if (child.exitCode !== null || performance.now() > deadline) {
          throw new Error(
            `expected ${what} (${pattern}) ${
              child.exitCode !== null ? `before exit ${child.exitCode}` : `within ${ms} ms`
            }; stdout: ${stdout}\nstderr: ${stderr}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    // Not child.kill: Deno's node:child_process then reports the signal as
    // the cause of exit even when the program handled it and exited 0.
    kill: (signal) => process.kill(child.pid!, signal),
    async exited(ms = 30_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`${script} ${args.join(" ")} did not exit within ${ms} ms`));
        }, ms);
      });
      try {
        const code = await Promise.race([exit, timeout]);
        return { code, stdout, stderr };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
