/**
 * `deno task bench --runtime node ...`: the benchmark under Node, on what
 * Node users install. Builds the npm package (`npm/`), stages it in
 * `dist/node-bench/` with a copy of `bench/` whose imports of the library
 * point at the package's `.js` files (as the Node test run does), compiles
 * bench/ with tsc against the package, and runs `node bench/main.js` with
 * the same arguments there (`--only W3a`, `--quick`). The results land in
 * that folder's `.bench-results/`; the table goes to stdout.
 *
 * @module
 */

import { join } from "node:path";
import { buildNpm, compile } from "./build_npm.ts";
import { ensureTools, ROOT, runTee, stageSuiteOnPackage, step } from "./_tools.ts";

/** Runs bench/main.ts under Node on the npm build with `args` (less `--runtime`); its exit code. */
export async function benchOnNode(args: string[]): Promise<number> {
  await buildNpm();
  const tools = await ensureTools();
  const stage = join(ROOT, "dist", "node-bench");
  step("compiling bench/ against the npm package in dist/node-bench/");
  await stageSuiteOnPackage(stage, "bench");
  // Type errors are Deno's to report (deno check); tsc still emits.
  await compile(tools, stage, {
    include: ["bench/**/*.ts"],
    exclude: [],
    outDir: stage,
    declaration: false,
    failOnError: false,
  });
  const rest = args.filter((arg, i) => !arg.startsWith("--runtime") && args[i - 1] !== "--runtime");
  step(`node bench/main.js ${rest.join(" ")}`);
  const { code } = await runTee("node", [join("bench", "main.js"), ...rest], { cwd: stage });
  return code;
}
