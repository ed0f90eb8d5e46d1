/**
 * A `DATABASE_URL` nobody listens on: the demo, the tests' helper
 * (`tests/_db.ts`) and `startTestDatabase()` of `./testing` all say that
 * `DATABASE_URL` was used, which host and port it names, and how to unset
 * it; never the password. Each runs as a real child process.
 */

import { describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { describeDatabaseUrl } from "../src/testing/database_url.ts";
import { fixtureCommand } from "./_child.ts";
import { freePort } from "./_ports.ts";

const PASSWORD = "s3cret-Pa55word";

/** Runs `command` with `DATABASE_URL` set; fails if it has not exited within 60 s. */
function runWithUrl(
  command: string,
  args: string[],
  url: string,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(command, args, {
    env: { ...process.env, DATABASE_URL: url, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not exit within 60 s:\n${output}`));
    }, 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function assertExplains(output: string, port: number): void {
  assert.match(output, /DATABASE_URL is set, so it was used/, output);
  assert.match(output, /ECONNREFUSED/, output);
  assert.ok(output.includes(`host 127.0.0.1, port ${port}`), output);
  assert.ok(output.includes("unset DATABASE_URL"), output);
  assert.ok(!output.includes(PASSWORD), `the password was printed:\n${output}`);
}

describe("a DATABASE_URL that cannot be reached", () => {
  it("is named by startTestDatabase() of ./testing, without the password", async () => {
    const port = await freePort();
    const url = `postgres://alice:${PASSWORD}@127.0.0.1:${port}/app`;
    const [command, args] = fixtureCommand("database_url_child", ["testing"]);
    const { code, output } = await runWithUrl(command, args, url);
    assert.equal(code, 1, output);
    assertExplains(output, port);
  });

  it("is named by the tests' database helper", async () => {
    const port = await freePort();
    const url = `postgres://alice:${PASSWORD}@127.0.0.1:${port}/app`;
    const [command, args] = fixtureCommand("database_url_child", ["tests"]);
    const { code, output } = await runWithUrl(command, args, url);
    assert.equal(code, 1, output);
    assertExplains(output, port);
  });

  it("is named by the demo, in a message without a stack trace", async () => {
    const port = await freePort();
    const url = `postgres://alice:${PASSWORD}@127.0.0.1:${port}/app`;
    const demo = fileURLToPath(new URL("../examples/demo.ts", import.meta.url));
    // The demo is Deno's (`deno task demo`), whatever runs this test.
    const { code, output } = await runWithUrl("deno", ["run", "-A", demo], url);
    assert.equal(code, 1, output);
    assertExplains(output, port);
    assert.doesNotMatch(output, /^\s+at /m, output);
  });
});

describe("describeDatabaseUrl", () => {
  it("hides the password and names every host and port", () => {
    assert.equal(
      describeDatabaseUrl("postgres://bob:pw@db.example:6543/app?sslmode=require"),
      "postgres://bob:***@db.example:6543/app?sslmode=require (host db.example, port 6543)",
    );
    assert.equal(
      describeDatabaseUrl("postgresql://bob@a:1,b/app?password=pw"),
      "postgresql://bob@a:1,b/app?password=*** (host a, port 1; host b, port 5432)",
    );
    assert.equal(
      describeDatabaseUrl("postgres://[::1]:5433/app"),
      "postgres://[::1]:5433/app (host [::1], port 5433)",
    );
    assert.equal(describeDatabaseUrl("not a url with pw"), "(not a postgres:// URL)");
  });
});
