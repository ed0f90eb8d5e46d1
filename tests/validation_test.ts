import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  type AggregateAppend,
  type Event,
  MAX_APPEND_PAYLOAD_BYTES,
  MAX_EVENT_PAYLOAD_BYTES,
  migrate,
  OptimisticConcurrencyError,
  PostgresStore,
  ProjectionProcessor,
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

/** A client shaped like postgres.js's that fails the test if any query is sent. */
const unconnected = Object.assign(() => assert.fail("SQL ran before the input was validated"), {
  unsafe: () => assert.fail("SQL ran before the input was validated"),
  begin: () => assert.fail("a transaction began before the input was validated"),
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
  ["a blank aggregateId", [{ ...e, aggregateId: "  " }], "any", "events[0].aggregateId"],
  ["a blank eventType", [{ ...e, eventType: "\t" }], "any", "events[0].eventType"],
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
  // PostgreSQL's bigint ends at 2^63 - 1: 2^63 would fail there with 22003.
  ["expectedVersion 2^63", [e], 2n ** 63n, "expectedVersion"],
  ["expectedVersion 2^64", [e], 2n ** 64n, "expectedVersion"],
  // An unpaired surrogate would be stored as U+FFFD, merging different ids.
  [
    "a lone surrogate in aggregateType",
    [{ ...e, aggregateType: "Order\uD800" }],
    "any",
    "events[0].aggregateType",
  ],
  [
    "a lone surrogate in aggregateId",
    [{ ...e, aggregateId: "a\uD800" }],
    "any",
    "events[0].aggregateId",
  ],
  [
    "a lone low surrogate in aggregateId",
    [{ ...e, aggregateId: "\uDC00a" }],
    "any",
    "events[0].aggregateId",
  ],
  ["a lone surrogate in eventType", [{ ...e, eventType: "\uDBFF" }], "any", "events[0].eventType"],
  ["a lone surrogate in traceId", [{ ...e, traceId: "t\uD800" }], "any", "events[0].traceId"],
  [
    "a lone surrogate in correlationId",
    [{ ...e, correlationId: "\uDFFF" }],
    "any",
    "events[0].correlationId",
  ],
  [
    "a lone surrogate in causationId",
    [{ ...e, causationId: "c\uD83D" }],
    "any",
    "events[0].causationId",
  ],
  [
    "a lone surrogate in metadata",
    [{ ...e, metadata: { note: "a\uD800" } }],
    "any",
    "events[0].metadata",
  ],
  [
    "a lone surrogate in a metadata key",
    [{ ...e, metadata: { ["\uDC00"]: 1 } }],
    "any",
    "events[0].metadata",
  ],
  // PostgreSQL reads the four-digit years of ISO text, up to 9999; postgres.js
  // reads years 1 to 99 back as 1901 to 1999.
  [
    "a createdAt in year 99",
    [{ ...e, createdAt: new Date("0099-12-31T23:59:59.999Z") }],
    "any",
    "events[0].createdAt",
  ],
  [
    "a createdAt in year 10000",
    [{ ...e, createdAt: new Date("+010000-01-01T00:00:00Z") }],
    "any",
    "events[0].createdAt",
  ],
  [
    "a createdAt just after 9999",
    [{ ...e, createdAt: new Date(Date.parse("9999-12-31T23:59:59.999Z") + 1) }],
    "any",
    "events[0].createdAt",
  ],
  [
    "a createdAt in year 0 (1 BC)",
    [{ ...e, createdAt: new Date("0000-12-31T23:59:59.999Z") }],
    "any",
    "events[0].createdAt",
  ],
  [
    "a createdAt before 4713 BC",
    [{ ...e, createdAt: new Date("-005000-01-01T00:00:00Z") }],
    "any",
    "events[0].createdAt",
  ],
  ["the largest Date", [{ ...e, createdAt: new Date(8.64e15) }], "any", "events[0].createdAt"],
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
  [
    "an expectedVersion 2^63",
    [{ events: [e], expectedVersion: 2n ** 63n }],
    "appends[0].expectedVersion",
  ],
  [
    "an expectedVersion given as undefined",
    [{ events: [e], expectedVersion: undefined }],
    "appends[0].expectedVersion",
  ],
  ["an entry with a misspelt key", [{ events: [e], expected: 1n }], "appends[0].expected"],
  [
    "a lone surrogate in the second entry's aggregateId",
    [{ events: [e] }, { events: [event("o-2\uD800")] }],
    "appends[1].events[0].aggregateId",
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
  "migrationsTable",
  "snapshotsTable",
  "parkedEventsTable",
  "groupMembersTable",
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

    it("refuses a blank id on a write, yet reads one stored before that was refused", async () => {
      const store = await db.freshStore();
      await assertInvalid(
        () => store.append(db.sql, [{ ...e, aggregateId: " " }]),
        "events[0].aggregateId",
      );
      await db.sql.unsafe(
        `insert into ${store.tables.events} (transaction_id, aggregate_type, aggregate_id,
           aggregate_version, aggregate_id_hash, event_id, event_type, payload)
         values (pg_current_xact_id(), 'Order', ' ', 1, 0, gen_random_uuid(), 'E', '\\x7b7d')`,
      );
      const stream = await store.readAggregateStream(db.sql, "Order", " ");
      assert.equal(stream.events.length, 1);
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
      await migrate(db.sql, { store });
      await migrate(db.sql, { store });
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
      [
        "a cursor position of 2^63",
        { after: { transactionId: 1n, globalPosition: 2n ** 63n } },
        "after.globalPosition",
      ],
      [
        "a cursor transaction id of 2^64 (xid8 ends at 2^64 - 1)",
        { after: { transactionId: 2n ** 64n, globalPosition: 0n } },
        "after.transactionId",
      ],
      ["a null cursor", { after: null }, "after"],
      ["null aggregate types", { aggregateTypes: null }, "aggregateTypes"],
      ["null segments", { segments: null }, "segments"],
      ["segments with a misspelt key", { segments: { count: 4, id: [1] } }, "segments.id"],
      ["a misspelt eventTypes", { eventType: ["Placed"] }, "options.eventType"],
      ["a lone surrogate in an event type", { eventTypes: ["Placed\uD800"] }, "eventTypes[0]"],
      [
        "a lone surrogate in an aggregate type",
        { aggregateTypes: ["\uDC00"] },
        "aggregateTypes[0]",
      ],
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
      ["fromVersion 2^63", "Order", "o-1", { fromVersion: 2n ** 63n }, "fromVersion"],
      ["toVersion 2^63", "Order", "o-1", { toVersion: 2n ** 63n }, "toVersion"],
      ["a misspelt fromVersion", "Order", "o-1", { from: 2n }, "options.from"],
      ["a lone surrogate in the type", "Order\uD800", "o-1", {}, "aggregateType"],
      ["a lone surrogate in the id", "Order", "o-1\uDFFF", {}, "aggregateId"],
    ];
    for (const [what, type, id, options, field] of readStream) {
      it(`readAggregateStream: ${what} → ${field}`, async () => {
        await assertInvalid(() => store.readAggregateStream(noDatabase, type, id, options), field);
      });
    }
  });
  describe("ranges are PostgreSQL's, checked before any SQL", () => {
    it("a bigint out of range inside sql.begin leaves the transaction usable", async () => {
      const store = await db.freshStore();
      const refused = await db.sql.begin(async (tx) => {
        const errors: unknown[] = [];
        for (
          const attempt of [
            () => store.append(tx, [event("o-1")], { expectedVersion: 2n ** 63n }),
            () => store.appendMany(tx, [{ events: [event("o-1")], expectedVersion: 2n ** 63n }]),
            () => store.readAggregateStream(tx, "Order", "o-1", { toVersion: 2n ** 63n }),
            () => store.readEvents(tx, { after: { transactionId: 1n, globalPosition: 2n ** 63n } }),
          ]
        ) {
          errors.push(
            await Promise.resolve().then(attempt as () => unknown).catch((error) => error),
          );
          // Without the check, PostgreSQL's 22003 aborts the transaction: 25P02 here.
          const [{ one }] = await tx`select 1 as one`;
          assert.equal(one, 1);
        }
        await store.append(tx, [event("o-1")], { expectedVersion: "no_stream" });
        return errors;
      });
      for (const error of refused) assert.ok(error instanceof ValidationError, String(error));
      assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 1n);
    });

    it("accepts the largest bigint and the largest xid8", async () => {
      const store = await db.freshStore();
      await store.append(db.sql, [event("o-1")]);
      const max = 2n ** 63n - 1n;
      const conflict = await store.append(db.sql, [event("o-1")], { expectedVersion: max })
        .catch((error) => error);
      assert.ok(conflict instanceof OptimisticConcurrencyError, String(conflict));
      assert.equal(conflict.actualVersion, 1n);
      const stream = await store.readAggregateStream(db.sql, "Order", "o-1", {
        fromVersion: 1n,
        toVersion: max,
      });
      assert.equal(stream.events.length, 1);
      const start = { transactionId: 1n, globalPosition: max };
      assert.equal((await store.readEvents(db.sql, { after: start })).length, 1);
      // A transaction id no cluster has reached is a restore, not bad input.
      const ahead = { transactionId: 2n ** 64n - 1n, globalPosition: max };
      const error = await store.readEvents(db.sql, { after: ahead }).catch((error) => error);
      assert.equal(error.name, "TransactionIdRegressionError");
    });

    it("stores and reads back createdAt at both ends of its range", async () => {
      const store = await db.freshStore();
      const first = new Date("0100-01-01T00:00:00.000Z");
      const last = new Date("9999-12-31T23:59:59.999Z");
      await store.append(db.sql, [event("o-1", { createdAt: first })]);
      await store.appendMany(db.sql, [{ events: [event("o-2", { createdAt: last })] }]);
      const read = await store.readEvents(db.sql);
      assert.deepEqual(read.map((e) => e.createdAt.toISOString()), [
        first.toISOString(),
        last.toISOString(),
      ]);
    });

    it("PostgreSQL itself refuses what is refused here", async () => {
      // The claims the refusals rest on, checked against the server.
      for (
        const [value, type] of [
          [String(2n ** 63n), "bigint"],
          [String(2n ** 64n), "xid8"],
          ["+010000-01-01T00:00:00.000Z", "timestamptz"],
          ["0000-12-31T23:59:59.999Z", "timestamptz"],
          ['{"a":"\\ud800"}', "jsonb"],
        ]
      ) {
        // Refused, or (xid8 before PostgreSQL 16: the input wraps) stored
        // as another value: either way it must not reach the server.
        const result = await db.sql.unsafe(`select $1::text::${type}::text`, [value])
          .values().catch((error) => error);
        assert.ok(
          result instanceof Error || result[0][0] !== value,
          `${type} ${value} was accepted as written`,
        );
      }
    });
  });

  describe("options objects are checked", () => {
    const store = new PostgresStore();
    const cases: [string, () => unknown, string, RegExp][] = [
      [
        "append with null",
        () => store.append(noDatabase, [e], null as never),
        "options",
        /got null/,
      ],
      ["append with 1n", () => store.append(noDatabase, [e], 1n as never), "options", /got 1n/],
      [
        "append with a misspelt key",
        () => store.append(noDatabase, [e], { expected: 1n } as never),
        "options.expected",
        /did you mean "expectedVersion"\?/,
      ],
      [
        "append with expectedVersion undefined, which would turn the check off",
        () => store.append(noDatabase, [e], { expectedVersion: undefined }),
        "expectedVersion",
        /omit the option for "any"/,
      ],
      [
        "readEvents with null",
        () => store.readEvents(noDatabase, null as never),
        "options",
        /got null/,
      ],
      [
        "readEvents with a misspelt eventTypes",
        () => store.readEvents(noDatabase, { eventType: ["Placed"] } as never),
        "options.eventType",
        /did you mean "eventTypes"\?/,
      ],
      [
        "readAggregateStream with null",
        () => store.readAggregateStream(noDatabase, "Order", "o-1", null as never),
        "options",
        /got null/,
      ],
      [
        "readAggregateStream with a misspelt fromVersion",
        () => store.readAggregateStream(noDatabase, "Order", "o-1", { from: 2n } as never),
        "options.from",
        /did you mean "fromVersion"\?/,
      ],
      ["new PostgresStore(null)", () => new PostgresStore(null as never), "config", /got null/],
      [
        "new PostgresStore with an unknown key",
        () => new PostgresStore({ tableName: "orders" } as never),
        "config.tableName",
        /known options \(schema, eventsTable/,
      ],
      [
        "new PostgresStore with a misspelt key",
        () => new PostgresStore({ eventTable: "orders" } as never),
        "config.eventTable",
        /did you mean "eventsTable"\?/,
      ],
    ];
    for (const [what, attempt, field, message] of cases) {
      it(`${what} → ${field}`, async () => {
        const error = await assertInvalid(attempt, field);
        assert.match(error.message, message);
      });
    }

    it("an omitted expectedVersion still means any", async () => {
      const store = await db.freshStore();
      await store.append(db.sql, [event("o-1")], {});
      await store.append(db.sql, [event("o-1")]);
      await store.appendMany(db.sql, [{ events: [event("o-1")] }]);
      assert.equal((await store.readAggregateStream(db.sql, "Order", "o-1")).version, 3n);
    });
  });

  describe("strings must be well-formed", () => {
    it("two ids differing in a lone surrogate are refused, not merged", async () => {
      const store = await db.freshStore();
      for (const id of ["a\uD800", "a\uDBFF"]) {
        await assertInvalid(() => store.append(db.sql, [event(id)]), "events[0].aggregateId");
      }
      assert.deepEqual(await db.counts(store), { events: 0, heads: 0, nextPosition: 1n });
    });

    it("surrogate pairs are fine everywhere, and read back unchanged", async () => {
      const store = await db.freshStore();
      const id = "order-\u{1F600}";
      const metadata = { "\u{1F4E6}": "\u{1F69A} shipped" };
      await store.append(db.sql, [
        event(id, { eventType: "\u{1F600}", traceId: "\u{1F600}", metadata }),
      ]);
      const [stored] = (await store.readAggregateStream(db.sql, "Order", id)).events;
      assert.equal(stored.aggregateId, id);
      assert.equal(stored.eventType, "\u{1F600}");
      assert.deepEqual(stored.metadata, metadata);
    });

    it("a projection's name and scope", async () => {
      const store = new PostgresStore();
      const processor = new ProjectionProcessor(unconnected as never, store);
      const handle = () => {};
      await assertInvalid(
        () => processor.run({ name: "totals\uD800", handle }, { mode: "until_caught_up" }),
        "projection.name",
      );
      await assertInvalid(() => processor.run({ name: " ", handle }), "projection.name");
      await assertInvalid(
        () => processor.run({ name: "t", eventTypes: ["\uDC00"], handle }),
        "projection.eventTypes[0]",
      );
      await assertInvalid(
        () => processor.run({ name: "t", aggregateTypes: ["Order\uD800"], handle }),
        "projection.aggregateTypes[0]",
      );
    });
  });

  describe("payloads have a documented maximum", () => {
    const big = (bytes: number) => new Uint8Array(bytes);
    const store = new PostgresStore();

    it(`one payload above MAX_EVENT_PAYLOAD_BYTES (${MAX_EVENT_PAYLOAD_BYTES})`, async () => {
      const payload = big(MAX_EVENT_PAYLOAD_BYTES + 1);
      const error = await assertInvalid(
        () => store.append(noDatabase, [e, { ...e, payload }]),
        "events[1].payload",
      );
      assert.match(error.message, /at most 134217728 bytes \(MAX_EVENT_PAYLOAD_BYTES\)/);
      assert.equal(error.got, "134217729 bytes");
    });

    it(`payloads of one append above MAX_APPEND_PAYLOAD_BYTES (${MAX_APPEND_PAYLOAD_BYTES})`, async () => {
      const payload = big(MAX_APPEND_PAYLOAD_BYTES / 2 + 1);
      const error = await assertInvalid(
        () => store.append(noDatabase, [{ ...e, payload }, { ...e, payload }]),
        "events[1].payload",
      );
      assert.match(error.message, /totalling at most 201326592 bytes \(MAX_APPEND_PAYLOAD_BYTES\)/);
      await assertInvalid(
        () =>
          store.appendMany(noDatabase, [
            { events: [{ ...e, payload }] },
            { events: [{ ...event("o-2"), payload }] },
          ]),
        "appends[1].events[0].payload",
      );
    });

    it("a payload at the limit is let through", async () => {
      const payload = big(MAX_EVENT_PAYLOAD_BYTES);
      const error = await Promise.resolve()
        .then(() => store.append(noDatabase, [{ ...e, payload }]))
        .catch((error) => error);
      // It passed validation: the client was used.
      assert.ok(!(error instanceof ValidationError), String(error));
    });
  });

  describe("messages render values the way they are written", () => {
    const store = new PostgresStore();
    const got: [string, unknown, string][] = [
      ["a plain object", {}, "an object"],
      ["an object without a prototype", Object.create(null), "an object"],
      ["a class instance", new Map(), "an instance of Map"],
      ["a typed array", new Uint16Array(2), "an instance of Uint16Array"],
      ["an array", [1, 2], "an array of 2"],
      ["a function", function toBytes() {}, "function toBytes"],
    ];
    for (const [what, payload, expected] of got) {
      it(`${what}: got ${expected}`, async () => {
        const error = await assertInvalid(
          () => store.append(noDatabase, [{ ...e, payload: payload as Uint8Array }]),
          "events[0].payload",
        );
        assert.equal(error.got, expected);
      });
    }

    it("a Date outside the range shows as ISO text", async () => {
      const createdAt = new Date("+010000-01-01T00:00:00Z");
      const error = await assertInvalid(
        () => store.append(noDatabase, [{ ...e, createdAt }]),
        "events[0].createdAt",
      );
      assert.equal(error.got, "Date +010000-01-01T00:00:00.000Z");
    });
  });
});

describe("mistakes a new user makes are named", () => {
  const store = new PostgresStore();

  it("refuses a misspelt event field instead of dropping it", async () => {
    const misspelt = { ...e, aggregateID: "o-2" } as unknown as Event;
    await assert.rejects(store.append(noDatabase, [misspelt]), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.field, "events[0].aggregateID");
      assert.match(error.message, /did you mean "aggregateId"/);
      return true;
    });
  });

  it("refuses what is not a postgres.js client, for the store and the processor", async () => {
    await assert.rejects(
      store.append("postgres://localhost/app" as unknown as Db, [e]),
      { name: "ValidationError", message: /^Invalid db: expected a postgres\.js client/ },
    );
    await assert.rejects(
      store.readEvents({} as unknown as Db),
      { name: "ValidationError", message: /^Invalid db:/ },
    );
    assert.throws(
      () => new ProjectionProcessor(store as never, store),
      { name: "ValidationError", message: /^Invalid sql:/ },
    );
    assert.throws(
      () => new ProjectionProcessor(unconnected as never, undefined as never),
      {
        name: "ValidationError",
        message: /^Invalid store: expected a PostgresStore, got undefined/,
      },
    );
  });

  it("refuses a misspelt scope field of a projection, which would take every event", async () => {
    const processor = new ProjectionProcessor(unconnected as never, store);
    for (const key of ["aggregateType", "eventtypes", "aggregate_types"]) {
      await assert.rejects(
        processor.run({ name: "p", handle() {}, [key]: ["User"] } as never),
        (error: unknown) => {
          assert.ok(error instanceof ValidationError, `${key}: ${error}`);
          assert.equal(error.field, `projection.${key}`);
          return true;
        },
      );
    }
  });
});
