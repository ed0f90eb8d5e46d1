/**
 * jsonCodec: bigint-safe round trips, upcasting across two versions (in
 * PostgreSQL and in memory), and the errors that name the culprit.
 *
 * @module
 */

import { after, before, describe, it } from "./_bounds.ts";
import assert from "node:assert/strict";
import {
  aggregateStream,
  EventDecodeError,
  jsonCodec,
  type TypedEvent,
  UnknownEventTypeError,
  uuidv7,
  ValidationError,
} from "../src/es/mod.ts";
import { json, setupDatabase, type TestDb } from "./_db.ts";

let database: TestDb;
before(async () => {
  database = await setupDatabase();
});
after(() => database.close());

/** Version 3 of a deposit: cents and a currency. Version 1 had `amount` in units, 2 added the currency. */
type Deposited = TypedEvent<"Deposited", { cents: bigint; currency: string }>;
type Closed = TypedEvent<"Closed", null>;

const codec = jsonCodec<Deposited | Closed>({
  events: {
    Deposited: {
      version: 3,
      upcast: {
        1: (data: { amount: number }) => ({ ...data, currency: "EUR" }),
        2: ({ amount, currency }: { amount: number; currency: string }) => ({
          cents: BigInt(amount) * 100n,
          currency,
        }),
      },
    },
    Closed: {},
  },
});

describe("jsonCodec", () => {
  it("writes the current version and round-trips bigints and metadata", () => {
    const event: Deposited = {
      type: "Deposited",
      data: { cents: 2n ** 70n, currency: "USD" },
      metadata: { by: "ann" },
    };
    const encoded = codec.encode(event);
    assert.equal(encoded.eventVersion, 3);
    assert.equal(encoded.eventType, "Deposited");
    const decoded = codec.decode({ ...encoded, eventId: uuidv7(), metadata: { by: "ann" } });
    assert.deepEqual(decoded, event);
    assert.deepEqual(codec.eventTypes, ["Deposited", "Closed"]);
  });

  it("upcasts events stored in versions 1 and 2 when a stream is read from PostgreSQL", async () => {
    const store = await database.freshStore();
    const stored = (eventVersion: number, data: unknown) => ({
      aggregateType: "Account",
      aggregateId: "a",
      eventType: "Deposited",
      eventVersion,
      payload: json(data),
    });
    await store.append(database.sql, [
      stored(1, { amount: 5 }),
      stored(2, { amount: 7, currency: "USD" }),
      {
        ...stored(3, {}),
        ...codec.encode({ type: "Deposited", data: { cents: 1n, currency: "GBP" } }),
      },
    ]);
    const { state, version } = await aggregateStream(
      store,
      database.sql,
      { aggregateType: "Account", aggregateId: "a" },
      {
        initialState: (): Deposited["data"][] => [],
        evolve: (seen, event) => event.type === "Deposited" ? [...seen, event.data] : seen,
        codec,
      },
    );
    assert.equal(version, 3n);
    assert.deepEqual(state, [
      { cents: 500n, currency: "EUR" },
      { cents: 700n, currency: "USD" },
      { cents: 1n, currency: "GBP" },
    ]);
  });

  it("names the event id, type and version of a payload that does not decode", () => {
    const eventId = uuidv7();
    const bad = (eventVersion: number, text: string) =>
      codec.decode({
        eventId,
        eventType: "Deposited",
        eventVersion,
        payload: new TextEncoder().encode(text),
        metadata: null,
      });
    assert.throws(
      () => bad(3, "{not json"),
      (error: unknown) =>
        error instanceof EventDecodeError && error.eventId === eventId &&
        error.eventType === "Deposited" && error.eventVersion === 3 &&
        error.message.includes(eventId),
    );
    assert.throws(
      () => bad(4, "{}"),
      (error: unknown) =>
        error instanceof EventDecodeError &&
        /versions? the codec reads \(1 to 3\)/.test(error.message),
    );
    assert.throws(
      () => bad(2, "null"),
      (error: unknown) =>
        error instanceof EventDecodeError && /upcaster from version 2/.test(error.message),
    );
  });

  it("refuses an event type it does not know, both ways", () => {
    assert.throws(
      () => codec.encode({ type: "Refunded", data: null } as never),
      (error: unknown) => error instanceof UnknownEventTypeError && error.eventType === "Refunded",
    );
    assert.throws(
      () =>
        codec.decode({
          eventId: uuidv7(),
          eventType: "Refunded",
          eventVersion: 1,
          payload: json({}),
          metadata: null,
        }),
      UnknownEventTypeError,
    );
  });

  it("refuses an upcaster chain with a gap, or beyond the current version", () => {
    const cases: [string, unknown][] = [
      ["options.events.E.upcast.2", {
        E: { version: 4, upcast: { 1: (d: unknown) => d, 3: (d: unknown) => d } },
      }],
      ["options.events.E.upcast.2", { E: { version: 2, upcast: { 2: (d: unknown) => d } } }],
      ["options.events.E.version", { E: { version: 0 } }],
      ["options.events.E.upcast.1", { E: { version: 2, upcast: { 1: "nope" } } }],
      ["options.events.E.versoin", { E: { versoin: 2 } }],
      ["options.events", {}],
    ];
    for (const [field, events] of cases) {
      assert.throws(
        () => jsonCodec({ events } as never),
        (error: unknown) => error instanceof ValidationError && error.field === field,
        field,
      );
    }
  });
});
