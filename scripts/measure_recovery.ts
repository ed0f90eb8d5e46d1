/**
 * `deno run -A scripts/measure_recovery.ts [--restarts N] [--pg-bin DIR]`:
 * how long appends and a running projection processor take to resume after
 * PostgreSQL restarts in immediate mode (`pg_ctl restart -m immediate`:
 * every backend killed at once, crash recovery at start-up), for several
 * postgres.js client settings.
 *
 * On a private cluster (PostgreSQL 15 from `/usr/lib/postgresql/15/bin`
 * when present, else `--pg-bin` or the testing module's binaries): four
 * writers append without pause (an append that fails is retried with the
 * same event id until it succeeds) and a continuous processor with the
 * default configuration applies every event. Each restart reports, from
 * the moment the restarted server accepts connections, how long until the
 * first append succeeds and until the processor handles the first event
 * appended after the crash. Numbers for the docs (`docs/event-store.md`,
 * `docs/projections.md`); not part of any test run.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { generateMigration } from "../src/migrate_gen.ts";
import { uuidv7 } from "../src/es/mod.ts";
import { PostgresStore } from "../src/postgres/mod.ts";
import { type ProcessorConfig, ProjectionProcessor } from "../src/projection/mod.ts";
import { startRestartableCluster } from "../tests/_cluster.ts";

const { values } = parseArgs({
  options: {
    restarts: { type: "string", default: "4" },
    "pg-bin": { type: "string" },
    only: { type: "string" },
  },
});
const RESTARTS = Number(values.restarts);
const PG15 = "/usr/lib/postgresql/15/bin";
const pgBin = values["pg-bin"] ??
  (await Deno.stat(PG15).then(() => PG15, () => undefined));
if (pgBin) process.env.PUPSOURCING_PG_BIN = pgBin;

/** Each run: the clients' settings (writers and processor alike) and the processor's. */
interface Setting {
  client: postgres.Options<Record<string, never>>;
  processor: ProcessorConfig;
}

/**
 * The client settings the docs recommend: reconnect after 0.1 s, 0.2 s,
 * 0.4 s, ... at most 1 s (postgres.js takes seconds), and give up on a
 * connection attempt after 5 s instead of 30.
 */
const RECOMMENDED: postgres.Options<Record<string, never>> = {
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
  connect_timeout: 5,
};

const SETTINGS: Record<string, Setting> = {
  "defaults": { client: {}, processor: {} },
  "recommended client settings": { client: RECOMMENDED, processor: {} },
  "recommended client settings, maxPollInterval 1000": {
    client: RECOMMENDED,
    processor: { maxPollInterval: 1000 },
  },
};

interface Sample {
  outageMs: number;
  appendsMs: number;
  processorMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(name: string, setting: Setting) {
  const options = setting.client;
  const cluster = await startRestartableCluster();
  const url = await cluster.createDatabase();
  const setup = postgres(url, { max: 1, onnotice: () => {} });
  await setup.unsafe(generateMigration({}));
  await setup.end();

  const store = new PostgresStore();
  const writer = postgres(url, { onnotice: () => {}, ...options });
  const reader = postgres(url, { onnotice: () => {}, ...options });
  /** Per event: when the attempt that stored it started, and when it returned. */
  const appendedAt = new Map<string, { startedAt: number; at: number }>();
  const handledAt: { id: string; at: number }[] = [];
  let stop = false;

  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const eventId = uuidv7();
      for (;;) {
        const startedAt = performance.now();
        try {
          await store.append(writer, [{
            aggregateType: "Recovery",
            aggregateId: `w-${w}`,
            eventType: "Ticked",
            eventId,
            payload: new Uint8Array([i & 255]),
          }]);
          appendedAt.set(eventId, { startedAt, at: performance.now() });
          break;
        } catch {
          // Retried with the same event id: an idempotent append.
          if (stop) return;
          await sleep(10);
        }
      }
    }
  });
  const controller = new AbortController();
  const running = new ProjectionProcessor(reader, store, setting.processor).run({
    name: "recovery",
    handle(event) {
      handledAt.push({ id: event.eventId, at: performance.now() });
    },
  }, { signal: controller.signal });

  const samples: Sample[] = [];
  try {
    await sleep(1500);
    for (let r = 0; r < RESTARTS; r++) {
      const { crashedAt, downAt, readyAt } = await cluster.restartImmediate();
      const deadline = performance.now() + 120_000;
      let appendsMs: number | undefined;
      let processorMs: number | undefined;
      while (
        (appendsMs === undefined || processorMs === undefined) && performance.now() < deadline
      ) {
        await sleep(5);
        if (appendsMs === undefined) {
          // Appends that started once the old server was gone: a backend
          // may finish a statement after the SIGQUIT was sent.
          const first = Math.min(
            ...[...appendedAt.values()].filter((a) => a.startedAt > downAt).map((a) => a.at),
          );
          if (Number.isFinite(first)) appendsMs = first - readyAt;
        }
        if (processorMs === undefined) {
          const first = handledAt.find(({ id }) => (appendedAt.get(id)?.startedAt ?? 0) > downAt);
          if (first) processorMs = first.at - readyAt;
        }
      }
      if (appendsMs === undefined || processorMs === undefined) {
        throw new Error(`${name}: no recovery within 120 s of restart ${r + 1}`);
      }
      const sample = { outageMs: readyAt - crashedAt, appendsMs, processorMs };
      samples.push(sample);
      console.log(
        `  ${name}, restart ${r + 1}: server down ${sample.outageMs.toFixed(0)} ms; ` +
          `after it was up: appends ${appendsMs.toFixed(0)} ms, processor ${
            processorMs.toFixed(0)
          } ms`,
      );
      await sleep(1500);
    }
  } finally {
    stop = true;
    controller.abort();
    await Promise.allSettled([...writers, running]);
    await Promise.all([writer.end({ timeout: 1 }), reader.end({ timeout: 1 })]);
    await cluster.stop();
  }
  return samples;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const rows: string[] = [];
for (const [name, setting] of Object.entries(SETTINGS)) {
  if (values.only && !name.includes(values.only)) continue;
  console.log(`\n${name}`);
  const samples = await measure(name, setting);
  const stat = (pick: (s: Sample) => number) => {
    const all = samples.map(pick);
    return `${(median(all) / 1000).toFixed(2)} s (max ${(Math.max(...all) / 1000).toFixed(2)} s)`;
  };
  rows.push(
    `| ${name} | ${stat((s) => s.outageMs)} | ${stat((s) => s.appendsMs)} | ${
      stat((s) => s.processorMs)
    } |`,
  );
}
console.log(
  `\n${RESTARTS} restarts each, PostgreSQL ${pgBin ?? "(testing module's binaries)"}; medians:\n`,
);
console.log("| settings | server down | appends resume after | processor resumes after |");
console.log("|---|---|---|---|");
for (const row of rows) console.log(row);
