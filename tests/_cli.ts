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
