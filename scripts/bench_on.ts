/**
 * `deno task bench --runtime node|bun ...`: the benchmark under Node or
 * Bun, on what their users install. Builds the npm package (`npm/`),
 * stages it in `dist/<runtime>-bench/` with a copy of `bench/` whose
 * imports of the library point at the package's `.js` files (as the Node
 * and Bun test runs do), compiles bench/ with tsc against the package, and
 * runs `bench/main.js` there with the same arguments (`--only W3a`,
 * `--quick`): under `node`, or under the pinned Bun of scripts/npm-tools/.
 * Both run the same JavaScript. The results land in that folder's
 * `.bench-results/`; the table goes to stdout.
 *
 * @module
 */

import { join } from "node:path";
import { buildNpm, compile } from "./build_npm.ts";
import { ensureTools, ROOT, runTee, stageSuiteOnPackage, step } from "./_tools.ts";

/** The runtimes the benchmark runs under besides Deno. */
export type BenchRuntime = "node" | "bun";

/**
 * Runs bench/main.ts under `runtime` on the npm build with `args` (less
 * `--runtime`); its exit code.
 */
export async function benchOn(runtime: BenchRuntime, args: string[]): Promise<number> {
  await buildNpm();
  const tools = await ensureTools();
  const stage = join(ROOT, "dist", `${runtime}-bench`);
  step(`compiling bench/ against the npm package in dist/${runtime}-bench/`);
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
  step(`${runtime} bench/main.js ${rest.join(" ")}`);
  const command = runtime === "bun" ? tools.bun : "node";
  const { code } = await runTee(command, [join("bench", "main.js"), ...rest], { cwd: stage });
  return code;
}
