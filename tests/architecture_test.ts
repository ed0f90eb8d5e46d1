/**
 * The shape of `src/` (docs/architecture.md): read from the imports of
 * every file, checked against the layers.
 *
 * - No import cycle anywhere (type-only imports count: they tie the files
 *   together for a reader just the same).
 * - `src/es` imports nothing outside `src/es`: no other layer, no package,
 *   no built-in.
 * - `src/postgres` imports neither `src/projection` nor `src/runner`;
 *   `src/projection` does not import `src/runner`.
 * - `src/telemetry`'s hooks (all but `lag.ts` and `mod.ts`) import only
 *   `src/es`: the append path and the processor call them.
 * - `src/projection` reaches `src/postgres` only through `mod.ts` (the
 *   public face) or `internal.ts` (the log reader and the driver
 *   workarounds).
 * - No file of `src/projection` names the events table. Its SQL can name a
 *   table in two ways only: by the configured name, which it can reach
 *   only as the `events` property of the store's `ResolvedTables` (so any
 *   `.events` or `{ events }` taken from the tables is refused), or by a
 *   literal name after FROM, JOIN, INTO or UPDATE (refused when that name
 *   is `events`). Reading the log goes through the log reader instead.
 *
 * Each rule is also run on a small made-up tree that breaks it, so a rule
 * that can no longer fail shows up here.
 */

import { describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";

/** A file of `src/`, by its path relative to `src/` (`postgres/store.ts`). */
interface Source {
  path: string;
  text: string;
}

/** One import of a file: its specifier, and the file it names when relative. */
interface Import {
  specifier: string;
  target: string | undefined;
}

const STATIC_IMPORT =
  /^(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+)\s+from\s*["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The imports of `source`: static, side-effect and dynamic, and `export ... from`. */
function importsOf(source: Source): Import[] {
  const specifiers = [STATIC_IMPORT, SIDE_EFFECT_IMPORT, DYNAMIC_IMPORT].flatMap((pattern) =>
    [...source.text.matchAll(pattern)].map((match) => match[1])
  );
  // Every line that starts an import must have been read: a form the
  // patterns miss would hide edges.
  const starts = source.text.match(/^import\b/gm)?.length ?? 0;
  const read = [STATIC_IMPORT, SIDE_EFFECT_IMPORT].reduce(
    (n, pattern) =>
      n + [...source.text.matchAll(pattern)].filter((m) => m[0].startsWith("import")).length,
    0,
  );
  assert.equal(read, starts, `${source.path}: an import statement was not understood`);
  return [...new Set(specifiers)].map((specifier) => ({
    specifier,
    target: specifier.startsWith(".")
      ? posix.normalize(posix.join(posix.dirname(source.path), specifier))
      : undefined,
  }));
}

/** The layer of a path: its first folder (`es`, `postgres`, ...), or the file at the top. */
function layerOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.indexOf("/")) : path;
}

/** A file's code without its comments, where JSDoc examples would look like imports and SQL. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Every rule broken by the files of `sources`, one message each. */
function violations(sources: readonly Source[]): string[] {
  const found: string[] = [];
  const graph = new Map(sources.map((s) => [s.path, importsOf(s)]));
  for (const [path, imports] of graph) {
    const from = layerOf(path);
    for (const { specifier, target } of imports) {
      const to = target === undefined ? undefined : layerOf(target);
      if (target !== undefined && !graph.has(target)) {
        found.push(`${path} imports ${specifier}, which is not a file of src/`);
      }
      if (from === "es" && to !== "es") {
        found.push(`${path} imports ${specifier}: src/es imports nothing outside src/es`);
      }
      if (from === "postgres" && (to === "projection" || to === "runner")) {
        found.push(`${path} imports ${specifier}: src/postgres is below src/${to}`);
      }
      if (
        from === "telemetry" && to !== undefined && to !== "es" && to !== "telemetry" &&
        path !== "telemetry/lag.ts" && path !== "telemetry/mod.ts"
      ) {
        found.push(
          `${path} imports ${specifier}: src/telemetry's hooks import only src/es ` +
            "(the append path and the processor call them)",
        );
      }
      if (from === "projection" && to === "runner") {
        found.push(`${path} imports ${specifier}: src/projection is below src/runner`);
      }
      if (
        from === "projection" && to === "postgres" &&
        target !== "postgres/mod.ts" && target !== "postgres/internal.ts"
      ) {
        found.push(
          `${path} imports ${specifier}: src/projection reaches src/postgres only through ` +
            "mod.ts or internal.ts",
        );
      }
    }
  }
  for (const cycle of cycles(graph)) found.push(`import cycle: ${cycle.join(" -> ")}`);
  for (const source of sources) {
    if (layerOf(source.path) !== "projection") continue;
    const code = withoutComments(source.text);
    const named = [
      /\.events\b/,
      /\{[^}]*\bevents\b[^}]*\}\s*=\s*[\w$.]*tables\b/,
      /\b(?:from|join|into|update)\s+(?:[\w"]+\.)?"?events\b/i,
    ].find((pattern) => pattern.test(code));
    if (named) {
      found.push(`${source.path} names the events table (${named}): read through the log reader`);
    }
  }
  return found;
}

/** The import cycles of `graph`, each as the files around it, first file repeated at the end. */
function cycles(graph: ReadonlyMap<string, Import[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (path: string) => {
    state.set(path, "open");
    stack.push(path);
    for (const { target } of graph.get(path) ?? []) {
      if (target === undefined || !graph.has(target)) continue;
      if (state.get(target) === "open") {
        found.push([...stack.slice(stack.indexOf(target)), target]);
      } else if (!state.has(target)) {
        visit(target);
      }
    }
    stack.pop();
    state.set(path, "done");
  };
  for (const path of [...graph.keys()].sort()) if (!state.has(path)) visit(path);
  return found;
}

/** Every `.ts` file under `src/` (no declaration files). */
function readSources(): Source[] {
  const root = fileURLToPath(new URL("../src/", import.meta.url));
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .map((path) => path.split("\\").join("/"))
    .filter((path) => path.endsWith(".ts") && !path.endsWith(".d.ts"))
    .sort()
    .map((path) => ({ path, text: readFileSync(root + path, "utf8") }));
}

describe("the shape of src/", () => {
  it("keeps the layers, with no cycle, and the events table out of src/projection", () => {
    const sources = readSources();
    assert.ok(sources.length > 30, `read ${sources.length} files of src/`);
    assert.ok(sources.some((s) => s.path === "postgres/log.ts"));
    assert.deepEqual(violations(sources), []);
  });

  it("finds each kind of violation in a tree made to break it", () => {
    const tree = (files: Record<string, string>): Source[] =>
      Object.entries(files).map(([path, text]) => ({ path, text }));
    const fine = {
      "es/event.ts": `export type Cursor = { at: bigint };`,
      "postgres/mod.ts": `import type { Cursor } from "../es/event.ts";\nexport const x = 1;`,
      "postgres/internal.ts": `export { x } from "./mod.ts";`,
      "postgres/log.ts": "const read = (db) => db`select * from ${table(db, tables.events)}`;",
      "projection/batch.ts": `import {\n  x,\n} from "../postgres/internal.ts";\n` +
        '/** import { y } from "../runner/mod.ts"; reads from events */\n' +
        "const lock = (db, t) => db`select from ${table(db, t.tables.checkpoints)}`;",
      "runner/mod.ts": `import { x } from "../projection/batch.ts";\nimport "../postgres/mod.ts";`,
    };
    assert.deepEqual(violations(tree(fine)), []);
    const broken = (path: string, text: string) => violations(tree({ ...fine, [path]: text }));
    const expect = (found: string[], pattern: RegExp) =>
      assert.ok(found.some((v) => pattern.test(v)), `${pattern} in ${JSON.stringify(found)}`);

    expect(
      broken("postgres/mod.ts", `import { y } from "./internal.ts";\nexport const x = 1;`),
      /import cycle: postgres\/internal\.ts -> postgres\/mod\.ts -> postgres\/internal\.ts/,
    );
    expect(
      broken("postgres/mod.ts", `import type { T } from "./internal.ts";`),
      /import cycle/,
    );
    expect(
      broken("es/event.ts", `import type { Db } from "../postgres/mod.ts";`),
      /src\/es imports nothing outside src\/es/,
    );
    expect(broken("es/event.ts", `import postgres from "postgres";`), /src\/es imports nothing/);
    expect(
      broken("postgres/log.ts", `export { lock } from "../projection/batch.ts";`),
      /src\/postgres is below src\/projection/,
    );
    expect(
      broken("postgres/log.ts", `const m = await import("../runner/mod.ts");`),
      /src\/postgres is below src\/runner/,
    );
    expect(
      broken("telemetry/batch.ts", `import { x } from "../postgres/mod.ts";`),
      /src\/telemetry's hooks import only src\/es/,
    );
    expect(
      broken("projection/batch.ts", `import * as runner from "../runner/mod.ts";`),
      /src\/projection is below src\/runner/,
    );
    expect(
      broken("projection/batch.ts", `import { decodeEvent } from "../postgres/decode.ts";`),
      /only through mod\.ts or internal\.ts/,
    );
    for (
      const sql of [
        "db`select * from ${table(db, target.tables.events)}`",
        "const { events, checkpoints } = target.tables;",
        "db`select count(*) from events`",
        'db`select 1 from es."events" e join x on true`',
        "db.unsafe(`insert into events (a) values (1)`)",
      ]
    ) {
      expect(broken("projection/batch.ts", sql), /projection\/batch\.ts names the events table/);
    }
    assert.throws(
      () => violations(tree({ "es/x.ts": `import { y } /* why */ from "./y.ts";` })),
      /an import statement was not understood/,
    );
  });
});
