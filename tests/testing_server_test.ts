/**
 * The throwaway server from a working directory its user cannot enter: a
 * project cloned into a `mktemp -d` folder (0700), run as root, where the
 * server runs as `postgres`.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { startTestDatabase } from "../src/testing/mod.ts";

describe("startTestDatabase", () => {
  it("starts from a 0700 working directory", async () => {
    const closed = await mkdtemp(join(tmpdir(), "pupsourcing-closed-"));
    const previous = process.cwd();
    process.chdir(closed);
    try {
      const server = await startTestDatabase({ ignoreDatabaseUrl: true });
      const sql = postgres(server.url, { max: 1, onnotice: () => {} });
      try {
        const [{ one }] = await sql`select 1 as one`;
        assert.equal(one, 1);
      } finally {
        await sql.end();
        await server.stop();
      }
    } finally {
      process.chdir(previous);
      await rm(closed, { recursive: true, force: true });
    }
  });
});
