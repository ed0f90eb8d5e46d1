import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { Buffer } from "node:buffer";
import type postgres from "postgres";
import { beginGuarded, inTransaction } from "../src/postgres/driver.ts";
import { isConnectionLoss } from "../src/postgres/connection_loss.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { deferred, waitUntil, within } from "./_projection.ts";

const BOUND_MS = 10_000;

/**
 * A TCP relay to the database that can hold the server's replies back:
 * while held, what the client sends is passed on and recorded, and what
 * the server answers waits until `release()`.
 */
async function replyHoldingRelay(url: string) {
  const target = new URL(url);
  const [dbPort, dbHost] = [Number(target.port), target.hostname];
  const sockets: Socket[] = [];
  let held: { client: Socket; chunk: Buffer }[] | undefined;
  let sentWhileHeld = Buffer.alloc(0);
  const server: Server = createServer((client) => {
    const db = connect(dbPort, dbHost);
    sockets.push(client, db);
    client.on("data", (chunk: Buffer) => {
      if (held) sentWhileHeld = Buffer.concat([sentWhileHeld, chunk]);
      db.write(chunk);
    });
    db.on("data", (chunk: Buffer) => held ? held.push({ client, chunk }) : client.write(chunk));
    const close = () => {
      client.destroy();
      db.destroy();
    };
    client.on("error", close).on("close", close);
    db.on("error", close).on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  target.host = `127.0.0.1:${port}`;
  return {
    url: target.toString(),
    hold() {
      held = [];
      sentWhileHeld = Buffer.alloc(0);
    },
    /** What the client sent since `hold()`, as text. */
    sent: () => sentWhileHeld.toString("latin1"),
    release() {
      for (const { client, chunk } of held ?? []) client.write(chunk);
      held = undefined;
    },
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe("beginGuarded's transactions", () => {
  let db: TestDb;
  before(async () => {
    db = await setupDatabase();
    await db.sql`create table if not exists guarded (id int primary key)`;
  });
  after(() => db.close());

  const rows = async () =>
    (await db.sql<{ id: number }[]>`select id from guarded order by id`).map((row) => row.id);
  const oneConnection = () => db.client({ max: 1 });
  const run = <T>(sql: postgres.Sql, body: (tx: postgres.TransactionSql) => Promise<T>) =>
    within(beginGuarded(sql, (tx) => body(tx), isConnectionLoss), BOUND_MS, "the transaction");

  it("sends BEGIN and the body's first statement before BEGIN's reply", async () => {
    const relay = await replyHoldingRelay(db.url);
    const sql = db.client({ max: 1 }, relay.url);
    try {
      await sql`select 1`;
      relay.hold();
      const result = beginGuarded(sql, async (tx) => {
        const [row] = await tx`select 'pipelined_marker' as marker`;
        return row.marker as string;
      }, isConnectionLoss);
      // Without the pipelining, the select would wait for BEGIN's reply, held here.
      await waitUntil(
        "the body's first statement to be sent while BEGIN's reply is held",
        () => relay.sent().includes("pipelined_marker"),
        BOUND_MS,
      );
      assert.match(relay.sent(), /begin/i);
      relay.release();
      assert.equal(await within(result, BOUND_MS, "the transaction"), "pipelined_marker");
    } finally {
      relay.release();
      await sql.end({ timeout: 1 });
      await relay.close();
    }
  });

  it("commits, and hands the connection back to the pool", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    const result = await run(sql, async (tx) => {
      await tx`insert into guarded values (1)`;
      return "done";
    });
    assert.equal(result, "done");
    assert.deepEqual(await rows(), [1]);
    // One connection: a query now waits forever unless it came back.
    const [{ open }] = await within(sql`select 1 as open`, BOUND_MS, "a query after COMMIT");
    assert.equal(open, 1);
  });

  it("rolls back a failed body, and hands the connection back", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    await assert.rejects(
      run(sql, async (tx) => {
        await tx`insert into guarded values (2)`;
        throw new Error("body failed");
      }),
      /body failed/,
    );
    assert.deepEqual(await rows(), []);
    await within(sql`select 1`, BOUND_MS, "a query after ROLLBACK");
  });

  it("fails, and writes nothing, when a statement failed and its error was caught", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    await assert.rejects(
      run(sql, async (tx) => {
        await tx`insert into guarded values (3)`;
        await tx`select 1/0`.catch(() => {});
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "25P02");
        assert.match(error.message, /rolled back at COMMIT.*tx\.savepoint/);
        return true;
      },
    );
    assert.deepEqual(await rows(), []);
    await within(sql`select 1`, BOUND_MS, "a query after the rolled-back COMMIT");
  });

  it("gives a tx with savepoints, and without release", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    await run(sql, async (tx) => {
      assert.ok(inTransaction(tx));
      assert.equal("release" in tx, false);
      await tx`insert into guarded values (4)`;
      await assert.rejects(
        tx.savepoint("inner", async (inner) => {
          await inner`insert into guarded values (5)`;
          await inner`select 1/0`;
        }),
        { code: "22012" },
      );
      const [, [{ n }]] = await tx.savepoint((inner) => [
        inner`insert into guarded values (6)`,
        inner`select count(*)::int as n from guarded`,
      ]);
      assert.equal(n, 2);
    });
    assert.deepEqual(await rows(), [4, 6]);
  });

  it("ends with PREPARE TRANSACTION after tx.prepare", async () => {
    const sql = oneConnection();
    const [{ max }] = await db.sql`select current_setting('max_prepared_transactions')::int as max`;
    await db.sql`truncate guarded`;
    const prepared = run(sql, async (tx) => {
      await tx`insert into guarded values (7)`;
      await tx.prepare("guarded_test");
    });
    if (max === 0) {
      // The server sees PREPARE TRANSACTION, and refuses it: prepared transactions are off.
      await assert.rejects(prepared, { code: "55000" });
    } else {
      await prepared;
      await db.sql`rollback prepared 'guarded_test'`;
    }
    assert.deepEqual(await rows(), []);
    await within(sql`select 1`, BOUND_MS, "a query after PREPARE TRANSACTION");
  });

  it("refuses a statement once the transaction is over, and sends nothing", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    let kept: postgres.TransactionSql | undefined;
    await run(sql, (tx) => {
      kept = tx;
      return Promise.resolve();
    });
    assert.throws(() => kept!`insert into guarded values (8)`, { code: "CONNECTION_CLOSED" });
    assert.throws(() => kept!.unsafe("insert into guarded values (8)"), {
      code: "CONNECTION_CLOSED",
    });
    assert.deepEqual(await rows(), []);
  });

  it("lets sql.end() finish a transaction in flight, then close", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    const go = deferred();
    const started = deferred();
    const result = run(sql, async (tx) => {
      await tx`insert into guarded values (9)`;
      started.resolve();
      await go.promise;
      await tx`insert into guarded values (10)`;
    });
    await within(started.promise, BOUND_MS, "the body to start");
    const ended = sql.end();
    go.resolve();
    await result;
    await within(ended, BOUND_MS, "sql.end() after the transaction");
    assert.deepEqual(await rows(), [9, 10]);
  });
});
