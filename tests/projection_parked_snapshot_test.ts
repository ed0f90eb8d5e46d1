/**
 * A batch that keeps aggregates in order behind parked events skips
 * looking its aggregates up when its statement says the projection has
 * none. That answer comes from the statement's snapshot, and another
 * worker of the same segments may park an event, move the checkpoints
 * and commit after that snapshot was taken, before the statement locks
 * the rows: the statement then locks the rows as that worker left them
 * but cannot see its parked event, and must answer "maybe".
 *
 * Within one statement the gap between the snapshot and the lock is a
 * race; a cursor opens it on demand: DECLARE takes the statement's
 * snapshot, FETCH runs it (locks included) with that snapshot.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import type postgres from "postgres";
import type { PostgresStore } from "../src/postgres/mod.ts";
import { EVENT_COLUMN_COUNT } from "../src/postgres/decode.ts";
import { ProjectionProcessor } from "../src/projection/mod.ts";
import { setupDatabase, type TestDb } from "./_db.ts";
import { appendEvents } from "./_projection.ts";

/** A statement as postgres.js sent it. */
interface Sent {
  query: string;
  parameters: unknown[];
}

describe("a batch's answer about parked events", () => {
  let db: TestDb;
  let store: PostgresStore;
  let batch: Sent | undefined;

  before(async () => {
    db = await setupDatabase();
    store = await db.freshStore();
    const sql = db.client({
      debug: (_connection: number, query: string, parameters: unknown[]) => {
        if (query.includes("for update of c skip locked")) batch ??= { query, parameters };
      },
    });
    await appendEvents(db.sql, store, { aggregates: 4, perAggregate: 2 });
    // The default policy with `then: "park"` keeps each aggregate's order.
    const outcome = await new ProjectionProcessor(sql, store, { segments: 1 }).run(
      { name: "ordered", handle() {}, onError: { then: "park" } },
      { mode: "until_caught_up" },
    );
    assert.equal(outcome.status, "caught_up");
  });
  after(() => db?.close());

  /** The batch statement's head: `[locked rows, parked]`, run through a cursor. */
  async function headThroughCursor(
    between: () => Promise<void>,
  ): Promise<[unknown[] | null, boolean]> {
    return await db.sql.begin(async (tx: postgres.TransactionSql) => {
      await tx.unsafe(`declare batch cursor for ${batch!.query}`, batch!.parameters as never[]);
      await between();
      const rows = await tx.unsafe("fetch all from batch").values();
      return JSON.parse(rows[0][EVENT_COLUMN_COUNT] as string);
    });
  }

  it("says 'maybe' when a locked row was moved after its snapshot by a batch that parked an event", async () => {
    const { checkpoints, parkedEvents, events } = store.tables;
    assert.ok(batch, "captured the batch statement");
    // Back to the start, with nothing parked: the batch is behind the tip.
    await db.sql`update ${db.sql(checkpoints)} set transaction_id = '0'::xid8, global_position = 0
      where projection_name = 'ordered'`;
    assert.deepEqual((await headThroughCursor(async () => {}))[1], false, "nothing parked");

    // Another worker's batch parks the first event and moves the row past it,
    // after the statement's snapshot and before its lock.
    const [first] = await db.sql`select * from ${db.sql(events)}
      order by transaction_id, global_position limit 1`;
    const [locked, parked] = await headThroughCursor(async () => {
      await db.sql.begin(async (other: postgres.TransactionSql) => {
        await other`insert into ${other(parkedEvents)} (projection_name, global_position,
            transaction_id, event_id, aggregate_type, aggregate_id, aggregate_version,
            event_type, status, reason, error, attempts)
          values ('ordered', ${first.global_position}, ${first.transaction_id}, ${first.event_id},
            ${first.aggregate_type}, ${first.aggregate_id}, ${first.aggregate_version},
            ${first.event_type}, 'parked', 'failed', 'Error: boom', 1)`;
        await other`update ${other(checkpoints)}
          set transaction_id = ${first.transaction_id}, global_position = ${first.global_position}
          where projection_name = 'ordered'`;
      });
    });
    assert.equal(locked?.length, 1, "the row was locked as the other batch left it");
    assert.equal(parked, true, "the parked event the snapshot cannot see is not ruled out");
    // With the row unchanged since the snapshot, what the snapshot sees is the answer.
    assert.equal((await headThroughCursor(async () => {}))[1], true, "the parked event is seen");
  });
});
