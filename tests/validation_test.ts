import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type AggregateAppend,
  type Event,
  PostgresStore,
  type TableNames,
  ValidationError,
} from "../mod.ts";
import type { Db } from "../src/postgres/mod.ts";
import { generateMigration } from "../src/migrate_gen.ts";
import { event, setupDatabase, type TestDb } from "./_db.ts";

/** A client that fails the test if the store runs anything on it. */
const noDatabase = new Proxy(() => {}, {
  apply: () => assert.fail("SQL ran before the input was validated"),
  get: () => assert.fail("the client was used before the input was validated"),
}) as unknown as Db;

const ID = "0190a6e0-0000-7000-8000-000000000001";
const e = event("o-1");

/** [what, events, expectedVersion, the field the error must name] */
const badAppends: [string, unknown, unknown, string][] = [
  ["no events", [], "any", "events"],
  ["events that are not an array", "nope", "any", "events"],
  ["events that are an object", { 0: e, length: 1 }, "any", "events"],
  ["an event that is null", [e, null], "any", "events[1]"],
  ["events of two aggregates", [e, event("o-2")], "any", "events[1].aggregateId"],
  [
    "events of two aggregate types",
    [e, { ...e, aggregateType: "Invoice" }],
    "any",
    "events[1].aggregateId",
  ],
  ["an empty aggregateType", [{ ...e, aggregateType: "" }], "any", "events[0].aggregateType"],
  ["an empty aggregateId", [{ ...e, aggregateId: "" }], "any", "events[0].aggregateId"],
  ["an empty eventType", [{ ...e, eventType: "" }], "any", "events[0].eventType"],
  ["a missing eventType", [{ ...e, eventType: undefined }], "any", "events[0].eventType"],
  ["a string payload", [{ ...e, payload: "{}" }], "any", "events[0].payload"],
  ["an array payload", [{ ...e, payload: [1, 2] }], "any", "events[0].payload"],
  ["an ArrayBuffer payload", [{ ...e, payload: new ArrayBuffer(2) }], "any", "events[0].payload"],
  ["a Uint16Array payload", [{ ...e, payload: new Uint16Array(2) }], "any", "events[0].payload"],
  ["a missing payload", [{ ...e, payload: undefined }], "any", "events[0].payload"],
  ["an eventId that is no UUID", [{ ...e, eventId: "order-1" }], "any", "events[0].eventId"],
  ["an empty eventId", [{ ...e, eventId: "" }], "any", "events[0].eventId"],
  ["a numeric eventId", [{ ...e, eventId: 7 }], "any", "events[0].eventId"],
  ["one eventId twice", [{ ...e, eventId: ID }, { ...e, eventId: ID }], "any", "events[1].eventId"],
  [
    "one eventId twice in two cases",
    [{ ...e, eventId: ID }, { ...e, eventId: ID.toUpperCase() }],
    "any",
    "events[1].eventId",
  ],
  ["eventVersion 0", [{ ...e, eventVersion: 0 }], "any", "events[0].eventVersion"],
  ["eventVersion 1.5", [{ ...e, eventVersion: 1.5 }], "any", "events[0].eventVersion"],
  ["eventVersion NaN", [{ ...e, eventVersion: NaN }], "any", "events[0].eventVersion"],
  ["eventVersion 2^31", [{ ...e, eventVersion: 2 ** 31 }], "any", "events[0].eventVersion"],
  ['eventVersion "1"', [{ ...e, eventVersion: "1" }], "any", "events[0].eventVersion"],
  ["expectedVersion NaN", [e], NaN, "expectedVersion"],
  ["expectedVersion -1n", [e], -1n, "expectedVersion"],
  ["expectedVersion 3 (a number)", [e], 3, "expectedVersion"],
  ['expectedVersion "nope"', [e], "nope", "expectedVersion"],
  ["expectedVersion null", [e], null, "expectedVersion"],
  ["an invalid createdAt", [{ ...e, createdAt: new Date("nope") }], "any", "events[0].createdAt"],
  ["a string createdAt", [{ ...e, createdAt: "2020-01-01" }], "any", "events[0].createdAt"],
  ["metadata with a bigint", [{ ...e, metadata: { amount: 1n } }], "any", "events[0].metadata"],
  ["metadata that is a function", [{ ...e, metadata: () => 1 }], "any", "events[0].metadata"],
  ["metadata with a NUL", [{ ...e, metadata: { note: "a\0b" } }], "any", "events[0].metadata"],
  ["metadata with a NUL in a key", [{ ...e, metadata: { "a\0": 1 } }], "any", "events[0].metadata"],
  [
    "a NUL in aggregateType",
    [{ ...e, aggregateType: "Order\0" }],
    "any",
    "events[0].aggregateType",
  ],
  ["a NUL in aggregateId", [{ ...e, aggregateId: "\0" }], "any", "events[0].aggregateId"],
  ["a NUL in eventType", [{ ...e, eventType: "Placed\0" }], "any", "events[0].eventType"],
  ["a NUL in traceId", [{ ...e, traceId: "t\0" }], "any", "events[0].traceId"],
  ["a NUL in correlationId", [{ ...e, correlationId: "\0" }], "any", "events[0].correlationId"],
  ["a NUL in causationId", [{ ...e, causationId: "c\0" }], "any", "events[0].causationId"],
  ["a numeric traceId", [{ ...e, traceId: 7 }], "any", "events[0].traceId"],
];

const ID2 = "0190a6e0-0000-7000-8000-000000000002";

/** [what, appends, the field the error must name] */
const badManyAppends: [string, unknown, string][] = [
  ["no entries", [], "appends"],
  ["entries that are not an array", { events: [e] }, "appends"],
  ["an entry that is null", [{ events: [e] }, null], "appends[1]"],
  ["an entry without events", [{ events: [e] }, { expectedVersion: "any" }], "appends[1].events"],
  ["an entry with no events", [{ events: [] }], "appends[0].events"],
  [
    "an entry of two aggregates",
    [{ events: [e, event("o-2")] }],
    "appends[0].events[1].aggregateId",
  ],
  [
    "a bad event in the second entry",
    [{ events: [e] }, { events: [{ ...event("o-2"), payload: "{}" }] }],
    "appends[1].events[0].payload",
  ],
  [
    "one aggregate in two entries",
    [{ events: [e] }, { events: [event("o-2")] }, { events: [event("o-1")] }],
    "appends[2].events[0].aggregateId",
  ],
  [
    "one event id in two entries",
    [{ events: [{ ...e, eventId: ID }] }, { events: [{ ...event("o-2"), eventId: ID }] }],
    "appends[1].events[0].eventId",
  ],
  [
    "one event id twice in an entry",
    [{ events: [{ ...e, eventId: ID2 }, { ...e, eventId: ID2 }] }],
    "appends[0].events[1].eventId",
  ],
  [
    "an expectedVersion that is a number",
    [{ events: [e] }, { events: [event("o-2")], expectedVersion: 1 }],
    "appends[1].expectedVersion",
  ],
  [
    "an expectedVersion null",
    [{ events: [e], expectedVersion: null }],
    "appends[0].expectedVersion",
  ],
];

const hostileNames: [string, unknown][] = [
  ["a quote and a statement", 'events"; drop table events; --'],
  ["a semicolon", "events;"],
  ["a space", "my events"],
  ["nothing", ""],
  ["64 characters", "e".repeat(64)],
  ["a leading digit", "1events"],
  ["a dot", "public.events"],
  ["a dash", "my-events"],
  ["a non-ASCII letter", "événements"],
  ["a number", 7],
];

const nameFields: (keyof TableNames)[] = [
  "schema",
  "eventsTable",
  "aggregateHeadsTable",
  "checkpointsTable",
];

/** Asserts that `attempt` throws a ValidationError naming `field`, synchronously or not. */
async function assertInvalid(attempt: () => unknown, field: string): Promise<ValidationError> {
  let error: unknown;
  try {
    await attempt();
  } catch (thrown) {
    error = thrown;
  }
  assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
  assert.equal(error.field, field);
  return error;
}

describe("validation", () => {
  let db: TestDb;
  before(async () => db = await setupDatabase());
  after(() => db.close());

  describe("append refuses bad input before any SQL runs", () => {
    for (const [what, events, expectedVersion, field] of badAppends) {
      it(`${what} → ${field}`, async () => {
        const store = await db.freshStore();
        await store.append(db.sql, [event("o-1")]);
        const before = await db.counts(store);
        const append = (on: Db) =>
          store.append(on, events as Event[], {
            expectedVersion: expectedVersion as "any",
          });

        await assertInvalid(() => append(noDatabase), field);
        await assertInvalid(() => append(db.sql), field);
        assert.deepEqual(await db.counts(store), before);
      });
    }

    it("says what was expected and what it got", async () => {
      const store = await db.freshStore();
      const error = await assertInvalid(
        () => store.append(noDatabase, [{ ...e, eventVersion: 1.5 }]),
        "events[0].eventVersion",
      );
      assert.equal(error.expected, "an integer from 1 to 2147483647");
      assert.equal(error.got, "number 1.5");
      assert.equal(
        error.message,
        "Invalid events[0].eventVersion: expected an integer from 1 to 2147483647, got number 1.5",
      );
    });

    it("accepts metadata that merely spells a NUL escape", async () => {
      const store = await db.freshStore();
      const metadata = { note: "JSON writes NUL as \\u0000", path: "C:\\u0000" };
      await store.append(db.sql, [event("o-1", { metadata })]);
      const [stored] = (await store.readAggregateStream(db.sql, "Order", "o-1")).events;
      assert.deepEqual(stored.metadata, metadata);
    });
  });

  describe("appendMany refuses bad input before any SQL runs", () => {
    for (const [what, appends, field] of badManyAppends) {
      it(`${what} → ${field}`, async () => {
        const store = await db.freshStore();
        await store.append(db.sql, [event("o-1")]);
        const before = await db.counts(store);
        const appendMany = (on: Db) => store.appendMany(on, appends as AggregateAppend[]);

        await assertInvalid(() => appendMany(noDatabase), field);
        await assertInvalid(() => appendMany(db.sql), field);
        assert.deepEqual(await db.counts(store), before);
      });
    }

    it("says which entry already holds the aggregate", async () => {
      const store = await db.freshStore();
      const error = await assertInvalid(
        () => store.appendMany(noDatabase, [{ events: [e] }, { events: [e] }]),
        "appends[1].events[0].aggregateId",
      );
      assert.match(error.expected, /not already in appends\[0\]/);
    });
  });

  describe("table names are plain identifiers or refused", () => {
    for (const field of nameFields) {
      for (const [what, name] of hostileNames) {
        it(`${field} with ${what}`, async () => {
          const names = { [field]: name } as TableNames;
          await assertInvalid(() => new PostgresStore(names), field);
          await assertInvalid(() => generateMigration(names), field);
        });
      }
    }

    it("notifyChannel with a quote", async () => {
      await assertInvalid(() => new PostgresStore({ notifyChannel: 'x"; --' }), "notifyChannel");
    });

    it("accepts 63 characters, PostgreSQL's limit, and the store works on them", async () => {
      const long = (prefix: string) => prefix + "_".repeat(63 - prefix.length);
      const names = {
        schema: long("s"),
        eventsTable: long("events"),
        aggregateHeadsTable: long("heads"),
        checkpointsTable: long("checkpoints"),
      };
      const store = new PostgresStore(names);
      await db.sql.unsafe(generateMigration(names));
      await db.sql.unsafe(generateMigration(names));
      const e1 = event("o-1", { eventId: ID });
      await store.append(db.sql, [e1]);
      const duplicate = await store.append(db.sql, [{ ...e1, aggregateId: "o-2" }])
        .catch((error) => error);
      assert.equal(duplicate.name, "DuplicateEventError");
      assert.equal((await store.readEvents(db.sql)).length, 1);
    });
  });

  describe("reads refuse bad options before any SQL runs", () => {
    const store = new PostgresStore();
    const readEvents: [string, object, string][] = [
      ["limit 0", { limit: 0 }, "limit"],
      ["limit -1", { limit: -1 }, "limit"],
      ["limit 1.5", { limit: 1.5 }, "limit"],
      ["limit NaN", { limit: NaN }, "limit"],
      ["limit Infinity", { limit: Infinity }, "limit"],
      ['limit "10"', { limit: "10" }, "limit"],
      [
        "a cursor with a number",
        { after: { transactionId: 1, globalPosition: 0n } },
        "after.transactionId",
      ],
      ["a cursor without a position", { after: { transactionId: 1n } }, "after.globalPosition"],
      [
        "a negative cursor",
        { after: { transactionId: 1n, globalPosition: -1n } },
        "after.globalPosition",
      ],
      ["an empty cursor", { after: {} }, "after.transactionId"],
      ["no aggregate types", { aggregateTypes: [] }, "aggregateTypes"],
      ["an empty aggregate type", { aggregateTypes: ["Order", ""] }, "aggregateTypes[1]"],
      ["event types that are a string", { eventTypes: "Placed" }, "eventTypes"],
      ["a NUL in an event type", { eventTypes: ["\0"] }, "eventTypes[0]"],
      ["segment count 0", { segments: { count: 0, ids: [0] } }, "segments.count"],
      ["no segment ids", { segments: { count: 4, ids: [] } }, "segments.ids"],
      ["a segment id out of range", { segments: { count: 4, ids: [4] } }, "segments.ids"],
      ["a fractional segment id", { segments: { count: 4, ids: [1.5] } }, "segments.ids"],
    ];
    for (const [what, options, field] of readEvents) {
      it(`readEvents: ${what} → ${field}`, async () => {
        await assertInvalid(() => store.readEvents(noDatabase, options), field);
      });
    }

    const readStream: [string, string, string, object, string][] = [
      ["an empty aggregate type", "", "o-1", {}, "aggregateType"],
      ["an empty aggregate id", "Order", "", {}, "aggregateId"],
      ["fromVersion 1 (a number)", "Order", "o-1", { fromVersion: 1 }, "fromVersion"],
      ["fromVersion -1n", "Order", "o-1", { fromVersion: -1n }, "fromVersion"],
      ['toVersion "2"', "Order", "o-1", { toVersion: "2" }, "toVersion"],
      ["toVersion NaN", "Order", "o-1", { toVersion: NaN }, "toVersion"],
    ];
    for (const [what, type, id, options, field] of readStream) {
      it(`readAggregateStream: ${what} → ${field}`, async () => {
        await assertInvalid(() => store.readAggregateStream(noDatabase, type, id, options), field);
      });
    }
  });
});
