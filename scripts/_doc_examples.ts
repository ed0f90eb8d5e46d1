/**
 * Runs the TypeScript examples of `docs/getting-started.md` for real, under
 * Deno (from the sources) and under Node and Bun (from the installed npm
 * package), against a fresh database each: the schema block, the
 * append/read block (its output is checked), the projection block (stopped
 * with SIGINT once its read model has the row) and the test block (with the
 * runtime's test runner).
 *
 * @module
 */

import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { NODE_COMPILER_OPTIONS, ROOT, run } from "./_tools.ts";

/** The document whose examples run. */
export const GETTING_STARTED: string = join(ROOT, "docs", "getting-started.md");

/** One code block, classified by what running it means. */
export interface DocExample {
  /** `schema`, `append`, `projection` or `test`, in document order. */
  kind: "schema" | "append" | "projection" | "test";
  /** The block's TypeScript. */
  code: string;
  /** Its first line in the document. */
  line: number;
}

/** The `ts` blocks of the document that are not marked `ignore`. */
export async function docExamples(path: string = GETTING_STARTED): Promise<DocExample[]> {
  const text = await readFile(path, "utf8");
  const examples: DocExample[] = [];
  for (const match of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    const code = match[1];
    const line = text.slice(0, match.index).split("\n").length;
    const kind = code.includes("node:test")
      ? "test"
      : code.includes("ProjectionProcessor")
      ? "projection"
      : code.includes("store.append")
      ? "append"
      : "schema";
    examples.push({ kind, code, line });
  }
  return examples;
}

/** How to run a file of one runtime. */
export interface Runtime {
  /** `deno`, `node` or `bun`. */
  name: string;
  /** Where the example files go. */
  dir: string;
  /** Turns the block's code into the file to run. */
  source(code: string): string;
  /** Writes or compiles the file; returns the path to run. */
  prepare(name: string, code: string): Promise<string>;
  /** The command that runs a program file. */
  program(file: string): [string, string[]];
  /** The command that runs a test file. */
  test(file: string): [string, string[]];
  /** Where the commands run. */
  cwd: string;
}

/**
 * Runs every example on `runtime` against a new database of `server`;
 * returns the failures (empty when all passed).
 */
export async function runDocExamples(
  runtime: Runtime,
  databaseUrl: string,
): Promise<string[]> {
  const examples = await docExamples();
  const failures: string[] = [];
  const env = { ...process.env, DATABASE_URL: databaseUrl };
  await rm(runtime.dir, { recursive: true, force: true });
  await mkdir(runtime.dir, { recursive: true });
  const kinds = examples.map((e) => e.kind).join(", ");
  if (kinds !== "schema, append, projection, test") {
    failures.push(`expected the examples schema, append, projection, test; got ${kinds}`);
  }
  for (const [i, example] of examples.entries()) {
    const label = `${runtime.name}: getting-started.md:${example.line} (${example.kind})`;
    const base = example.kind === "test" ? `example${i}_test` : `example${i}`;
    const file = await runtime.prepare(base, runtime.source(example.code));
    console.log(`--- ${label}`);
    if (example.kind === "projection") {
      const error = await runUntilProjected(runtime, file, env, databaseUrl);
      if (error) failures.push(`${label}: ${error}`);
      continue;
    }
    const [command, args] = example.kind === "test" ? runtime.test(file) : runtime.program(file);
    const { code, output } = await capture(command, args, runtime.cwd, env);
    process.stdout.write(output);
    if (code !== 0) failures.push(`${label}: exited with code ${code}`);
    if (example.kind === "append") {
      for (const expected of ["0n 2n", "expected 1, actual 2"]) {
        if (!output.includes(expected)) failures.push(`${label}: expected "${expected}" in output`);
      }
    }
  }
  return failures;
}

/**
 * Starts the projection example, waits until its read model holds the
 * user appended by the previous example, then stops it with SIGINT (as
 * the example's Ctrl-C handler expects) and wants exit code 0.
 */
async function runUntilProjected(
  runtime: Runtime,
  file: string,
  env: Record<string, string | undefined>,
  databaseUrl: string,
): Promise<string | undefined> {
  const [command, args] = runtime.program(file);
  const child = spawn(command, args, { cwd: runtime.cwd, env, stdio: "inherit" });
  const exited = new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  );
  const sql = postgres(databaseUrl, { onnotice: () => {}, max: 1 });
  try {
    const deadline = Date.now() + 30_000;
    let rows = 0;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        [{ rows }] = await sql`select count(*)::int as rows from user_emails`;
      } catch { /* the example creates the table */ }
      if (rows > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (child.exitCode !== null) return `exited early with code ${child.exitCode}`;
    if (rows === 0) {
      child.kill("SIGKILL");
      return "the read model user_emails stayed empty for 30 s";
    }
    // Not child.kill("SIGINT"): under Deno (2.9.6) the child then reports
    // exit (null, "SIGINT") even when it handled the signal and exited 0.
    process.kill(child.pid!, "SIGINT");
    const timeout = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(timeout);
    console.log(`(user_emails has ${rows} row; SIGINT stopped it with exit code ${code})`);
    return code === 0 ? undefined : `exit code ${code} after SIGINT`;
  } finally {
    await sql.end();
  }
}

function capture(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string | undefined>,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk) => output += chunk);
    child.stderr!.on("data", (chunk) => output += chunk);
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/**
 * Deno, on the repo's sources: `--config` makes deno.json's import map (and
 * the package's own name) resolve for files in `work`. Not under `dist/`,
 * which deno.json excludes, so `deno test` would find no test there.
 */
export function denoRuntime(work: string): Runtime {
  const dir = join(work, "docs-deno");
  const config = join(ROOT, "deno.json");
  return {
    name: "deno",
    dir,
    cwd: ROOT,
    source: (code) => code,
    async prepare(name, code) {
      const file = join(dir, `${name}.ts`);
      await writeFile(file, code);
      return file;
    },
    program: (file) => [Deno.execPath(), ["run", "-A", "--config", config, file]],
    test: (file) => [Deno.execPath(), ["test", "-A", "--config", config, file]],
  };
}

/** Node, in a project where the npm package is installed; tsc compiles each block. */
export function nodeRuntime(project: string, tsc: string, typeRoot: string): Runtime {
  const dir = join(project, "docs-node");
  return {
    name: "node",
    dir,
    cwd: project,
    source: (code) => code.replaceAll("@getpup/pupsourcing", "pupsourcing"),
    async prepare(name, code) {
      await writeFile(join(dir, `${name}.ts`), code);
      const tsconfig = {
        compilerOptions: {
          ...NODE_COMPILER_OPTIONS,
          types: ["node"],
          typeRoots: [typeRoot],
          outDir: ".",
          rootDir: ".",
        },
        files: [`${name}.ts`],
      };
      await writeFile(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
      // Type errors fail the check: the docs must compile against the package's types.
      const code_ = await run(tsc, ["-p", "tsconfig.json", "--pretty", "false"], { cwd: dir });
      if (code_ !== 0) throw new Error(`tsc failed on ${name}.ts (exit code ${code_})`);
      return join(dir, `${name}.js`);
    },
    program: (file) => ["node", [file]],
    test: (file) => ["node", ["--test", file]],
  };
}

/** Bun, in the same project, running the TypeScript as it is. */
export function bunRuntime(project: string, bun: string): Runtime {
  const dir = join(project, "docs-bun");
  return {
    name: "bun",
    dir,
    cwd: project,
    source: (code) => code.replaceAll("@getpup/pupsourcing", "pupsourcing"),
    async prepare(name, code) {
      const file = join(dir, `${name}.ts`);
      await writeFile(file, code);
      return file;
    },
    program: (file) => [bun, [file]],
    test: (file) => [bun, ["test", "--timeout", "60000", file]],
  };
}
