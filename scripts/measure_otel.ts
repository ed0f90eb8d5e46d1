/**
 * `deno run -A scripts/measure_otel.ts [--events N] [--reps N] [--batch-size N]`: what an
 * OpenTelemetry SDK costs a projection's catch-up. In one process, on one
 * log of N events (default 50,000, W5's size), a no-op projection catches
 * up from the start again and again, alternately with no SDK and with one
 * registered (a meter provider with a reader, a tracer provider with a
 * batching span processor whose exporter drops the spans: see
 * `bench/otel.ts`), and the medians are compared. Alternating in one
 * process keeps a shared machine's noise out of the ratio as far as it
 * can be. Numbers for docs/operations.md; not part of any test run.
 *
 * @module
 */

import { context, metrics, trace } from "@opentelemetry/api";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { registerOtel } from "../bench/otel.ts";
import { migrate, PostgresStore } from "../src/postgres/mod.ts";
import { ProjectionProcessor, resetProjection } from "../src/projection/mod.ts";
import { startTestDatabase } from "../src/testing/mod.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "50000" },
    reps: { type: "string", default: "5" },
    "batch-size": { type: "string", default: "1000" },
  },
});
const EVENTS = Number(values.events);
const REPS = Number(values.reps);
const BATCH = Number(values["batch-size"]);

const server = await startTestDatabase();
const sql = postgres(await server.createDatabase(), { onnotice: () => {}, max: 4 });
try {
  const store = new PostgresStore();
  await migrate(sql, { store });
  const payload = new TextEncoder().encode(JSON.stringify({ amount: 1 }));
  for (let done = 0; done < EVENTS; done += 1000) {
    await store.appendMany(
      sql,
      Array.from({ length: 100 }, (_, a) => ({
        events: Array.from({ length: 10 }, () => ({
          aggregateType: "Account",
          aggregateId: `acc-${done + a}`,
          eventType: "Deposited",
          payload,
        })),
      })),
    );
  }
  const projection = { name: "noop", handle() {} };
  const processor = new ProjectionProcessor(sql, store, { batchSize: BATCH });
  const catchUp = async () => {
    await resetProjection(sql, store, projection).catch(() => {});
    const started = performance.now();
    const outcome = await processor.run(projection, { mode: "until_caught_up" });
    return outcome.processed / ((performance.now() - started) / 1000);
  };
  await catchUp(); // warm up: JIT, plans, caches
  const rates: { off: number[]; on: number[] } = { off: [], on: [] };
  for (let rep = 0; rep < REPS; rep++) {
    rates.off.push(await catchUp());
    const stop = registerOtel();
    rates.on.push(await catchUp());
    await stop();
    trace.disable();
    metrics.disable();
    context.disable();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const show = (xs: number[]) => xs.map((x) => Math.round(x).toLocaleString("en")).join(", ");
  console.log(`${EVENTS} events, batchSize ${BATCH}, ${REPS} alternating runs each`);
  console.log(
    `no SDK:        ${show(rates.off)} events/s (median ${Math.round(median(rates.off))})`,
  );
  console.log(
    `SDK registered: ${show(rates.on)} events/s (median ${Math.round(median(rates.on))})`,
  );
  console.log(
    `ratio (SDK / no SDK, medians): ${(median(rates.on) / median(rates.off)).toFixed(3)}`,
  );
} finally {
  await sql.end();
  await server.stop();
}
