/**
 * `deno task test:node`: the whole suite under Node.
 *
 * Runs the suite on what users install: builds the npm package (`npm/`),
 * stages it in `dist/node-test/` with a copy of `tests/` whose imports of
 * the library point at the package's `.js` files (see
 * `stageSuiteOnPackage`), compiles only the tests with tsc against the
 * package's `.d.ts` files, and runs `node --test` on every compiled
 * `tests/*_test.js`. No source file of the library is compiled or loaded
 * here. The tests find PostgreSQL exactly as under Deno: the throwaway
 * server of the package's `./testing` (embedded binaries from the repo's
 * `node_modules/`, or `PUPSOURCING_PG_BIN`), or `DATABASE_URL`.
 *
 * Ends with a plain `N passed, M failed` line. Extra arguments are test file
 * names to run instead of all (`deno task test:node smoke_test.ts`).
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { buildNpm, compile } from "./build_npm.ts";
import {
  ensureTools,
  listTests,
  ROOT,
  runScript,
  runTee,
  stageSuiteOnPackage,
  step,
} from "./_tools.ts";

/**
 * Pass and fail counts from the summary of node's spec reporter
 * (`ℹ pass 3`, `ℹ fail 0`, `ℹ cancelled 0`).
 */
export function parseSpecSummary(output: string): { passed: number; failed: number } {
  const count = (name: string) => {
    const matches = [...output.matchAll(new RegExp(`^\\S* ?${name} (\\d+)\\s*$`, "gm"))];
    return matches.length ? Number(matches[matches.length - 1][1]) : 0;
  };
  return { passed: count("pass"), failed: count("fail") + count("cancelled") };
}

async function main(): Promise<number> {
  const started = performance.now();
  await buildNpm();
  const tools = await ensureTools();

  const stage = join(ROOT, "dist", "node-test");
  step("compiling tests/ against the npm package in dist/node-test/");
  await stageSuiteOnPackage(stage);
  // Type errors in tests are Deno's to report (deno check); tsc still emits,
  // and a test that really breaks on Node fails below.
  const tscCode = await compile(tools, stage, {
    include: ["tests/**/*.ts"],
    exclude: [],
    outDir: stage,
    declaration: false,
    failOnError: false,
  });
  if (tscCode !== 0) {
    console.log(`(tsc reported type errors, exit code ${tscCode}; running anyway)`);
  }

  const tests = await listTests(process.argv.slice(2));
  const files = tests.map((name) => join("tests", name.replace(/\.ts$/, ".js")));
  step(`node --test on ${files.length} test files`);
  // --test-force-exit: a test that leaves a handle open must not hang the run.
  const { code, output } = await runTee(
    "node",
    ["--test", "--test-force-exit", "--test-reporter=spec", ...files],
    { cwd: stage },
  );
  let { passed, failed } = parseSpecSummary(output);
  if (code !== 0 && failed === 0) {
    console.log(`node --test exited with code ${code} without a failed test: counted as 1 failure`);
    failed = 1;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `\nnode ${
      execFileSync("node", ["--version"], { encoding: "utf8" }).trim()
    }: ${files.length} files in ${seconds} s`,
  );
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && code === 0 ? 0 : 1;
}

if (import.meta.main) await runScript("test:node", main);
