import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { beginGuarded } from "../src/postgres/driver.ts";
import { isConnectionLoss } from "../src/postgres/connection_loss.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { within } from "./_projection.ts";

const BOUND_MS = 10_000;

describe("beginGuarded's transactions", () => {
  let db: TestDb;
  before(async () => {
    db = await setupDatabase();
    await db.sql`create table if not exists guarded (id int primary key)`;
  });
  after(() => db.close());

  const rows = async () =>
    (await db.sql<{ id: number }[]>`select id from guarded order by id`).map((row) => row.id);
  // One connection: a statement that escaped the transaction would run on
  // the very connection the next transaction uses.
  const oneConnection = () => db.client({ max: 1 });
  const run = <T>(sql: postgres.Sql, body: (tx: postgres.TransactionSql) => Promise<T>) =>
    within(beginGuarded(sql, (tx) => body(tx), isConnectionLoss), BOUND_MS, "the transaction");

  it("commits the body's writes, or rolls them back when it fails", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    assert.equal(
      await run(sql, async (tx) => {
        await tx`insert into guarded values (1)`;
        return "done";
      }),
      "done",
    );
    await assert.rejects(
      run(sql, async (tx) => {
        await tx`insert into guarded values (2)`;
        throw new Error("body failed");
      }),
      /body failed/,
    );
    assert.deepEqual(await rows(), [1]);
  });

  it("fails with a statement's error even when the body caught it, and writes nothing", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    await assert.rejects(
      run(sql, async (tx) => {
        await tx`insert into guarded values (3)`;
        await tx`select 1/0`.catch(() => {});
      }),
      { code: "22012" },
    );
    assert.deepEqual(await rows(), []);
  });

  it("refuses a statement made once the transaction is over", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    let kept: postgres.TransactionSql | undefined;
    let inner: postgres.TransactionSql | undefined;
    await run(sql, (tx) =>
      tx.savepoint((savepoint) => {
        kept = tx;
        inner = savepoint;
        return [];
      }));
    for (
      const make of [
        () => kept!`insert into guarded values (4)`,
        () => kept!.unsafe("insert into guarded values (4)"),
        () => kept!.notify("guarded", "late"),
        () => inner!`insert into guarded values (4)`,
      ]
    ) {
      assert.throws(make, { code: "CONNECTION_CLOSED" });
    }
    await within(sql`select 1`, BOUND_MS, "a query after the transaction");
    assert.deepEqual(await rows(), []);
  });

  it("refuses a statement made in the transaction but first awaited after it", async () => {
    const sql = oneConnection();
    await db.sql`truncate guarded`;
    // postgres.js sends a query when it is first awaited: these two were
    // made in time, and would run on the connection after the COMMIT.
    const late: postgres.PendingQuery<postgres.Row[]>[] = [];
    await run(sql, (tx) => {
      late.push(tx`insert into guarded values (5)`);
      late.push(tx.unsafe("insert into guarded values (6)"));
      return Promise.resolve();
    });
    for (const query of late) {
      await assert.rejects(within(query, BOUND_MS, "a late statement"), {
        code: "CONNECTION_CLOSED",
      });
    }
    // And a transaction after it, on the same connection, is not joined.
    await run(sql, async (tx) => {
      await tx`insert into guarded values (7)`;
    });
    assert.deepEqual(await rows(), [7]);
  });
});
