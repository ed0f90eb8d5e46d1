/**
 * Logging: the store and the processor take an optional logger with
 * `debug`, `info` and `error(message, fields)`. `console` fits as is; here
 * a small adapter adds a prefix and a level filter. Without a logger the
 * library does no logging work at all.
 *
 *     deno run -A examples/with_logging.ts            # info and errors
 *     deno run -A examples/with_logging.ts --debug    # and every query step
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { LogFields, Logger, TypedEvent } from "../mod.ts";
import { jsonCodec, PostgresStore, ProjectionError } from "../mod.ts";
import { type Projection, ProjectionProcessor } from "../src/projection/mod.ts";
import { openExampleDb } from "./_db.ts";

const { values: flags } = parseArgs({ options: { debug: { type: "boolean", default: false } } });

/** A console logger with a prefix, which drops debug lines unless asked. */
function consoleLogger(prefix: string, debug: boolean): Logger {
  const line = (level: string, message: string, fields: LogFields = {}) => {
    // Errors as one line; the ProjectionError thrown to the caller has the rest.
    const shown = Object.fromEntries(
      Object.entries(fields).map((
        [key, value],
      ) => [key, value instanceof Error ? `${value.name}: ${value.message}` : value]),
    );
    console.log(`${level} [${prefix}] ${message}`, shown);
  };
  return {
    debug: (message, fields) => debug && line("DEBUG", message, fields),
    info: (message, fields) => line("INFO ", message, fields),
    error: (message, fields) => line("ERROR", message, fields),
  };
}

/** A cart's event, typed, and its codec. */
type CartEvent = TypedEvent<"ItemAdded", { sku: string }>;
const codec = jsonCodec<CartEvent>({ events: { ItemAdded: {} } });

const db = await openExampleDb();
const store = new PostgresStore({ logger: consoleLogger("store", flags.debug) });

await store.append(db.sql, [
  {
    aggregateType: "Cart",
    aggregateId: "cart-1",
    ...codec.encode({ type: "ItemAdded", data: { sku: "A" } }),
  },
  {
    aggregateType: "Cart",
    aggregateId: "cart-1",
    ...codec.encode({ type: "ItemAdded", data: { sku: "B" } }),
  },
], { expectedVersion: "no_stream" });
await store.append(db.sql, [
  {
    aggregateType: "Cart",
    aggregateId: "cart-2",
    ...codec.encode({ type: "ItemAdded", data: { sku: "C" } }),
  },
]);

const logger = consoleLogger("projection", flags.debug);
const cartSizes: Projection = {
  name: "cart_sizes",
  handle() {},
};
await new ProjectionProcessor(db.sql, store, { logger }).run(cartSizes, {
  mode: "until_caught_up",
});

// A failing handler: the processor logs the failure and stops with a
// ProjectionError that says where.
const broken: Projection = {
  name: "broken",
  handle(event) {
    if (event.aggregateId === "cart-2") throw new Error("cannot handle cart-2");
  },
};
try {
  await new ProjectionProcessor(db.sql, store, { logger }).run(broken, { mode: "until_caught_up" });
  throw new Error("expected the broken projection to fail");
} catch (error) {
  if (!(error instanceof ProjectionError)) throw error;
  console.log(`caught ${error.name} at global position ${error.event.globalPosition}`);
}

await db.close();
console.log("with_logging: done");
