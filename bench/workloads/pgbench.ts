/**
 * W1 through pgbench (when it is on the machine): the same head insert +
 * event insert as one prepared statement from a C client, for reference.
 *
 * @module
 */

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { quote } from "../../src/postgres/tables.ts";
import type { BenchDb } from "../db.ts";
import { payload } from "../events.ts";
import type { WorkloadResult } from "../result.ts";
import { type Sample, summarize } from "../stats.ts";
import type { Config } from "../config.ts";

/** The pgbench binary: next to PUPSOURCING_PG_BIN, Debian's, or none. */
function findPgbench(): string | undefined {
  const candidates = [
    process.env.PUPSOURCING_PG_BIN && join(process.env.PUPSOURCING_PG_BIN, "pgbench"),
    ...["18", "17", "16", "15", "14", "13"].map((v) => `/usr/lib/postgresql/${v}/bin/pgbench`),
  ];
  return candidates.find((c): c is string => !!c && existsSync(c));
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      command,
      args,
      (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout + stderr),
    )
  );
}

/** Adds a pgbench row to a W1 result; notes why when pgbench is missing. */
export async function pgbenchW1(
  db: BenchDb,
  config: Config,
  clients: number,
  w1: WorkloadResult,
): Promise<WorkloadResult> {
  const pgbench = findPgbench();
  if (!pgbench) {
    w1.notes.push("pgbench not found: no pgbench reference row.");
    return w1;
  }
  const store = await db.freshStore();
  const { events, aggregateHeads } = store.tables;
  const hex = Array.from(payload("00000000-0000-0000-0000-000000000000", 1))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  // The same ids as the store's: UUIDv7 where the server has it (18+).
  const eventId = parseInt(db.settings.server_version) >= 18 ? "uuidv7()" : "gen_random_uuid()";
  const script = `with id as (select gen_random_uuid()::text as aggregate_id),
head as (insert into ${quote(aggregateHeads)} (aggregate_type, aggregate_id, aggregate_version)
  select 'Order', aggregate_id, 1 from id on conflict do nothing returning aggregate_id, aggregate_version)
insert into ${
    quote(events)
  } (aggregate_type, aggregate_id, aggregate_version, aggregate_id_hash, event_id, event_type, payload)
select 'Order', head.aggregate_id, head.aggregate_version, hashtext(head.aggregate_id) & 2147483647, ${eventId}, 'OrderLineAdded', '\\x${hex}'::bytea
from head returning global_position, transaction_id, created_at;
`.replace(/\n/g, " ") + "\n";
  const dir = await mkdtemp(join(tmpdir(), "pupsourcing-pgbench-"));
  const file = join(dir, "append.sql");
  await writeFile(file, script);
  const url = new URL(db.url);
  const samples: Sample[] = [];
  try {
    for (let rep = 0; rep < config.reps; rep++) {
      const out = await run(pgbench, [
        "-n",
        "-M",
        "prepared",
        "-f",
        file,
        "-c",
        String(clients),
        "-j",
        String(Math.min(clients, 2)),
        "-T",
        String(config.seconds),
        "-h",
        url.hostname,
        "-p",
        url.port,
        "-U",
        decodeURIComponent(url.username || "postgres"),
        url.pathname.slice(1),
      ]);
      const tps = /tps = ([\d.]+)/.exec(out);
      if (!tps) throw new Error(`pgbench printed no tps:\n${out}`);
      samples.push({ throughput: Number(tps[1]), latencies: [] });
    }
  } catch (error) {
    w1.notes.push(`pgbench failed: ${(error as Error).message.split("\n")[0]}`);
    return w1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const summary = summarize(samples);
  const ceiling = w1.rows.find((r) => r.variant === w1.ceiling);
  w1.rows.push({
    variant: "pgbench, same statement (C client, -M prepared)",
    role: "reference",
    summary,
    ratio: ceiling ? summary.throughput / ceiling.summary.throughput : undefined,
  });
  return w1;
}
