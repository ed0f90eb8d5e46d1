/**
 * Runs every example to completion, one after the other, each with the
 * command examples/README.md gives for it, and exits non-zero if any
 * fails, times out, or is missing from the list below.
 *
 *     deno task examples
 *     deno run -A scripts/run_examples.ts basic scaling   # just these
 *
 * Each example uses `DATABASE_URL` when it is set (a fresh database on that
 * server, dropped afterwards), otherwise its own throwaway PostgreSQL.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The example files and their arguments: the bounded form of each. */
const EXAMPLES: Record<string, string[]> = {
  "demo.ts": [],
  "basic.ts": [],
  "transfers.ts": [],
  "single_worker.ts": ["--stop-after", "2"],
  "partitioned.ts": ["--spawn", "4"],
  "worker_pool.ts": ["--workers", "4"],
  "multiple_projections.ts": [],
  "scaling.ts": [],
  "consumer_group.ts": [],
  "stop_resume.ts": [],
  "with_logging.ts": [],
  "bank_account/main.ts": [],
  "poison_events.ts": [],
};

const TIMEOUT_MS = 120_000;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const examplesDir = join(root, "examples");
// An example is a file, or a folder with a main.ts (a small application).
const onDisk = readdirSync(examplesDir, { withFileTypes: true }).flatMap((entry) => {
  if (entry.name.startsWith("_")) return [];
  if (entry.isDirectory()) {
    return readdirSync(join(examplesDir, entry.name)).includes("main.ts")
      ? [`${entry.name}/main.ts`]
      : [];
  }
  return entry.name.endsWith(".ts") ? [entry.name] : [];
});
const unlisted = onDisk.filter((file) => !(file in EXAMPLES));
const wanted = process.argv.slice(2).map((name) => name.endsWith(".ts") ? name : `${name}.ts`);
const selected = (wanted.length > 0 ? wanted : Object.keys(EXAMPLES))
  .filter((file) => onDisk.includes(file) || wanted.includes(file));

function run(file: string): Promise<{ ok: boolean; detail: string }> {
  const args = ["run", "-A", join("examples", file), ...(EXAMPLES[file] ?? [])];
  console.log(`\n--- deno ${args.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit" });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ ok: false, detail: `timed out after ${TIMEOUT_MS / 1000} s` });
    }, TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: String(error) });
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, detail: signal ? `killed by ${signal}` : `exit code ${code}` });
    });
  });
}

const results: { file: string; ok: boolean; detail: string; seconds: number }[] = [];
for (const file of selected) {
  const started = performance.now();
  const { ok, detail } = await run(file);
  results.push({ file, ok, detail, seconds: (performance.now() - started) / 1000 });
}

console.log("\n--- examples");
for (const { file, ok, detail, seconds } of results) {
  console.log(
    `${ok ? "ok  " : "FAIL"} ${file.padEnd(26)} ${seconds.toFixed(1).padStart(5)} s  ${detail}`,
  );
}
for (const file of unlisted) {
  console.log(`FAIL ${file.padEnd(26)} not listed in scripts/run_examples.ts: add its command`);
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed + unlisted.length;
console.log(`examples: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
