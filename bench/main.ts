/**
 * The benchmark: `deno task bench [--quick] [--only W1,W3]`. Starts its own
 * PostgreSQL with durable settings (or uses DATABASE_URL), runs every
 * workload against our code and the hand-written ceiling in the same run,
 * prints a markdown table, writes the JSON to .bench-results/ and, on a
 * full run, docs/benchmarks.md and docs/benchmarks.svg.
 *
 * @module
 */

import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { config } from "./config.ts";
import { openBenchDb } from "./db.ts";
import { markdownPage, type RunInfo, table } from "./report.ts";
import type { WorkloadResult } from "./result.ts";
import { w1, w2 } from "./workloads/append_single.ts";
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

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    docs: { type: "boolean" },
  },
});
const cfg = config(flags.quick!);
const only = flags.only?.split(",").map((s) => s.trim().toUpperCase());
const wanted = (id: string) => !only || only.some((o) => id.toUpperCase().startsWith(o));

const started = performance.now();
const db = await openBenchDb();
const results: WorkloadResult[] = [];
const log = (message: string) =>
  console.error(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${message}`);
try {
  const step = async (id: string, run: () => Promise<WorkloadResult | WorkloadResult[]>) => {
    if (!wanted(id)) return;
    log(`${id} ...`);
    const out = await run();
    results.push(...(Array.isArray(out) ? out : [out]));
  };
  await step("W1-1", async () => pgbenchW1(db, cfg, 1, await w1(db, cfg, 1)));
  await step("W1-8", async () => pgbenchW1(db, cfg, 8, await w1(db, cfg, 8)));
  await step("W2", () => w2(db, cfg));
  await step("W3a", () => w3Bulk(db, cfg));
  await step("W3b", () => w3Multi(db, cfg));
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
}
log("done");

const info: RunInfo = {
  date: new Date().toISOString(),
  quick: cfg.quick,
  reps: cfg.reps,
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${
    Math.round(os.totalmem() / 2 ** 30)
  } GiB RAM, ${os.type()} ${os.release()}, load average ${os.loadavg()[0].toFixed(1)} at the end`,
  runtime: `Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
  server: { ...db.settings, embedded: String(db.server.embedded) },
  client: "postgres.js 3.4.9, default options (no TCP_NODELAY) unless a variant says otherwise",
};
console.log(table(results));
await mkdir(".bench-results", { recursive: true });
const stamp = info.date.replace(/[:.]/g, "-");
await writeFile(
  `.bench-results/${stamp}${cfg.quick ? "-quick" : ""}.json`,
  JSON.stringify({ info, results }, null, 2),
);
if ((!cfg.quick && !only) || flags.docs) {
  await mkdir("docs", { recursive: true });
  await writeFile("docs/benchmarks.md", markdownPage(info, results, FINDINGS));
  await writeFile("docs/benchmarks.svg", chart(results));
  // The repository's `deno fmt --check` covers markdown and SVG: format both as it would.
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "-q", "docs/benchmarks.md", "docs/benchmarks.svg"],
  }).output();
  log("wrote docs/benchmarks.md and docs/benchmarks.svg");
}
