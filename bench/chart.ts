/**
 * docs/benchmarks.svg: our throughput over the ceiling per workload, with
 * each workload's target marked.
 *
 * @module
 */

import type { WorkloadResult } from "./result.ts";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** One bar per ratio target: the ratio measured, and the target line. */
export function chart(results: readonly WorkloadResult[]): string {
  const bars = results.flatMap((w) =>
    w.verdicts.filter((v) => "min" in v.target).map((v) => ({
      label: `${w.id} ${v.target.variant}`,
      against: "against" in v.target && v.target.against !== "ceiling"
        ? v.target.against
        : w.ceiling ?? "ceiling",
      value: v.value,
      min: (v.target as { min: number }).min,
      met: v.met,
    }))
  );
  const latency = results.flatMap((w) =>
    w.verdicts.filter((v) => !("min" in v.target)).map((v) => ({ w, v }))
  );
  const rowH = 34, left = 430, width = 900, scaleW = 380, maxRatio = 1.6;
  const top = 50;
  const height = top + bars.length * rowH + 40 + latency.length * 24 + 20;
  const x = (r: number) => Math.round((left + Math.min(r, maxRatio) / maxRatio * scaleW) * 10) / 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">pupsourcing throughput ÷ hand-written ceiling (same run)</text>`,
    `<text x="10" y="40" fill="#555">bar: measured ratio; black tick: target; green = met, red = missed</text>`,
  ];
  for (let r = 0; r <= maxRatio + 1e-9; r += 0.2) {
    out.push(
      `<line x1="${x(r)}" y1="${top - 4}" x2="${x(r)}" y2="${
        top + bars.length * rowH
      }" stroke="#ddd"/>`,
      `<text x="${x(r)}" y="${top + bars.length * rowH + 14}" text-anchor="middle" fill="#555">${
        r.toFixed(1)
      }</text>`,
    );
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    out.push(
      `<text x="10" y="${y + 13}">${esc(b.label.slice(0, 60))}</text>`,
      `<text x="10" y="${y + 26}" fill="#777" font-size="10">vs ${
        esc(b.against.slice(0, 70))
      }</text>`,
      `<rect x="${left}" y="${y + 4}" width="${
        Math.round((x(b.value) - left) * 10) / 10
      }" height="20" fill="${b.met ? "#3a9a4a" : "#c8453a"}"/>`,
      `<line x1="${x(b.min)}" y1="${y}" x2="${x(b.min)}" y2="${
        y + 28
      }" stroke="black" stroke-width="2"/>`,
      `<text x="${x(b.value) + 6}" y="${y + 18}">${b.value.toFixed(2)}</text>`,
    );
  });
  let y = top + bars.length * rowH + 40;
  for (const { w, v } of latency) {
    out.push(
      `<text x="10" y="${y}" fill="${v.met ? "#3a9a4a" : "#c8453a"}">${
        esc(
          "p50MaxMs" in v.target
            ? `${w.id} ${v.target.variant}: p50 ${
              v.value.toFixed(2)
            } ms (target ≤ ${v.target.p50MaxMs} ms)`
            : `${w.id} ${v.target.variant}: p50 ${v.value.toFixed(2)} × ${
              (v.target as { p50Against: string }).p50Against
            } (target ≤ ${(v.target as { max: number }).max} ×)`,
        )
      }</text>`,
    );
    y += 24;
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
