/**
 * The benchmark: `deno task bench [--quick] [--only W1,W3] [--runtime node|bun] [--otel]`. Starts its own
 * PostgreSQL with durable settings (or uses DATABASE_URL), runs every
 * workload against our code and the hand-written ceiling in the same run,
 * prints a markdown table, writes the JSON to .bench-results/ and, on a
 * full run, docs/benchmarks.md and docs/benchmarks.svg.
 *
 * The same module runs under Node or Bun on the npm build: `--runtime
 * node` (or `bun`) builds the package, stages bench/ on it and runs it
 * there (scripts/bench_on.ts).
 *
 * `deno task bench --render .bench-results/<run>.json` writes the docs
 * page and chart again from a saved full run, with bench/findings.ts as it
 * is now: the findings can be brought up to date without running again.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { config } from "./config.ts";
import { openBenchDb } from "./db.ts";
import { markdownPage, type RunInfo, table } from "./report.ts";
import type { WorkloadResult } from "./result.ts";
import { w1, w1Coalesced, w2 } from "./workloads/append_single.ts";
import { FINDINGS } from "./findings.ts";
import { chart } from "./chart.ts";
import { w3Bulk, w3Multi } from "./workloads/append_bulk.ts";
import { loadFixture } from "./fixture.ts";
import { w4Log, w4Stream } from "./workloads/read.ts";
import { w5 } from "./workloads/projection.ts";
import { w8 } from "./workloads/group.ts";
import { w6 } from "./workloads/wakeup.ts";
import { pgbenchW1 } from "./workloads/pgbench.ts";
import { w7 } from "./workloads/command.ts";
import { VARIANTS } from "./workloads/variant.ts";
import { registerOtel } from "./otel.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    docs: { type: "boolean" },
    runtime: { type: "string" },
    otel: { type: "boolean", default: false },
    render: { type: "string" },
  },
});
if (flags.render !== undefined) {
  const saved = JSON.parse(await readFile(flags.render, "utf8")) as {
    info: RunInfo;
    results: WorkloadResult[];
  };
  if (saved.info.quick) {
    throw new Error(`--render: expected a full run, got the --quick run ${flags.render}`);
  }
  await writeDocs(saved.info, saved.results);
  process.exit(0);
}
if (flags.runtime !== undefined && flags.runtime !== runtimeName()) {
  if (runtimeName() !== "deno" || (flags.runtime !== "node" && flags.runtime !== "bun")) {
    throw new Error(
      `--runtime: expected node or bun (from Deno: deno task bench --runtime node), got ` +
        `${flags.runtime} under ${runtimeName()}`,
    );
  }
  // Named by URL: the copy of this module that runs under Node or Bun has no scripts/.
  const script = new URL("../scripts/bench_on.ts", import.meta.url).href;
  // Typed here, not by `typeof import(...)`, which the staged copy's tsc cannot resolve either.
  const { benchOn } = await import(script) as {
    benchOn(runtime: "node" | "bun", args: string[]): Promise<number>;
  };
  process.exit(await benchOn(flags.runtime, process.argv.slice(2)));
}
const cfg = config(flags.quick!);
const only = flags.only?.split(",").map((s) => s.trim().toUpperCase());
const wanted = (id: string) => !only || only.some((o) => id.toUpperCase().startsWith(o));

const started = performance.now();
// --otel: an OpenTelemetry SDK records the library's metrics and spans.
const stopOtel = flags.otel ? registerOtel() : undefined;
const db = await openBenchDb();
const results: WorkloadResult[] = [];
const log = (message: string) =>
  console.error(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${message}`);
try {
  const step = async (id: string, run: () => Promise<WorkloadResult | WorkloadResult[]>) => {
    if (!wanted(id)) return;
    log(`${id} ...`);
    try {
      const out = await run();
      results.push(...(Array.isArray(out) ? out : [out]));
    } finally {
      await db.releaseClients();
    }
  };
  await step("W1-1", async () => pgbenchW1(db, cfg, 1, await w1(db, cfg, 1)));
  await step("W1-8", async () => pgbenchW1(db, cfg, 8, await w1(db, cfg, 8)));
  await step("W2", () => w2(db, cfg));
  await step("W3a", () => w3Bulk(db, cfg));
  await step("W3b", () => w3Multi(db, cfg));
  await step("W1c-64", async () => pgbenchW1(db, cfg, 8, await w1Coalesced(db, cfg, 64, 8)));
  await step("W1c-1", () => w1Coalesced(db, cfg, 1, 1));
  for (const variant of VARIANTS) {
    await step(`W1-1${variant.suffix}`, () => w1(db, cfg, 1, variant));
    await step(`W1-8${variant.suffix}`, () => w1(db, cfg, 8, variant));
    await step(`W2${variant.suffix}`, () => w2(db, cfg, variant));
    await step(`W3a${variant.suffix}`, () => w3Bulk(db, cfg, variant));
    await step(`W3b${variant.suffix}`, () => w3Multi(db, cfg, variant));
  }
  if (["W4", "W5", "W8"].some(wanted)) {
    log(`loading ${cfg.fixtureAggregates * cfg.fixtureVersions} events ...`);
    const fixture = await loadFixture(db, cfg);
    await step("W4a", () => w4Stream(db, cfg, fixture));
    await step("W4b", () => w4Log(db, cfg, fixture));
    await step("W5", () => w5(db, cfg, fixture));
    await step("W8", () => w8(db, cfg, fixture));
  }
  await step("W6", () => w6(db, cfg));
  await step("W7", () => w7(db, cfg));
} finally {
  await db.close();
  await stopOtel?.();
}
log("done");

const info: RunInfo = {
  date: new Date().toISOString(),
  quick: cfg.quick,
  reps: cfg.reps,
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${
    Math.round(os.totalmem() / 2 ** 30)
  } GiB RAM, ${os.type()} ${os.release()}, load average ${os.loadavg()[0].toFixed(1)} at the end`,
  runtime: runtimeDescription(),
  server: { ...db.settings, embedded: String(db.server.embedded) },
  client: "postgres.js 3.4.9, default options (no TCP_NODELAY) unless a variant says otherwise" +
    (flags.otel ? "; an OpenTelemetry SDK registered (--otel)" : ""),
};
console.log(table(results));
await mkdir(".bench-results", { recursive: true });
const stamp = info.date.replace(/[:.]/g, "-");
await writeFile(
  `.bench-results/${stamp}${cfg.quick ? "-quick" : ""}.json`,
  JSON.stringify({ info, results }, null, 2),
);
if (((!cfg.quick && !only) || flags.docs) && runtimeName() === "deno") {
  await writeDocs(info, results);
  log("wrote docs/benchmarks.md and docs/benchmarks.svg");
}

/** Writes docs/benchmarks.md and docs/benchmarks.svg for a run. */
async function writeDocs(info: RunInfo, results: WorkloadResult[]): Promise<void> {
  await mkdir("docs", { recursive: true });
  await writeFile("docs/benchmarks.md", markdownPage(info, results, FINDINGS));
  await writeFile("docs/benchmarks.svg", chart(results));
  // The repository's `deno fmt --check` covers markdown and SVG: format both as it would.
  execFileSync(process.execPath, ["fmt", "-q", "docs/benchmarks.md", "docs/benchmarks.svg"]);
}

/** The runtime this module runs on. */
function runtimeName(): "deno" | "node" | "bun" {
  return process.versions.bun ? "bun" : "deno" in process.versions ? "deno" : "node";
}

/** The runtime and its JavaScript engine, for the report. */
function runtimeDescription(): string {
  const v = process.versions as Record<string, string | undefined>;
  const name = runtimeName();
  const version = name === "node" ? process.version : `${v[name]}`;
  return `${name[0].toUpperCase()}${name.slice(1)} ${version} (V8 ${v.v8 ?? "–"})`;
}
