/**
 * Specifications for users' own tests: given/when/then for deciders, on
 * the in-memory store (no database), and for projections, on a real
 * PostgreSQL (the throwaway one of this module, or the caller's client).
 *
 * @module
 */

import assert from "node:assert/strict";
import postgres, { type Sql, type TransactionSql } from "postgres";
import type { TypedEvent } from "../es/codec.ts";
import { DeciderError, handleCommand, type StateOptions, type StreamName } from "../es/command.ts";
import type { Event } from "../es/event.ts";
import { InMemoryStore } from "../es/memory_store.ts";
import { migrate } from "../postgres/migrate.ts";
import { PostgresStore } from "../postgres/store.ts";
import type { TypedProjection } from "../projection/typed.ts";
import { startTestDatabase, type TestDatabase } from "./server.ts";

/** The stream a decider spec runs on unless told otherwise. */
const SPEC_STREAM: StreamName = { aggregateType: "Spec", aggregateId: "spec-1" };

/**
 * Options of {@linkcode deciderSpec}: the decider's state functions and
 * codec, and optionally the stream the events belong to.
 *
 * @example
 * ```ts
 * import type { DeciderSpecOptions } from "@getpup/pupsourcing/testing";
 * import { jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type Counted = TypedEvent<"Counted", { by: number }>;
 * const options: DeciderSpecOptions<number, Counted> = {
 *   initialState: () => 0,
 *   evolve: (n, e) => n + e.data.by,
 *   codec: jsonCodec<Counted>({ events: { Counted: {} } }),
 * };
 * ```
 */
export interface DeciderSpecOptions<State, E extends TypedEvent>
  extends Omit<StateOptions<State, E, unknown>, "snapshots"> {
  /** The aggregate; default `Spec` `spec-1`. */
  stream?: StreamName;
}

/**
 * The last step of a decider spec: what the command must do.
 *
 * @example
 * ```ts ignore
 * await spec.given([]).when(open("ann")).then([{ type: "Opened", data: { owner: "ann" } }]);
 * ```
 */
export interface DeciderThen<E extends TypedEvent> {
  /**
   * Passes when the command decides exactly `expected` (deep equality);
   * throws an `AssertionError` otherwise.
   */
  then(expected: readonly E[]): Promise<void>;
  /**
   * Passes when `decide` throws an error that is an instance of `expected`
   * or for which `expected` returns `true`; any error when omitted.
   */
  thenThrows(
    expected?: (new (...args: never[]) => unknown) | ((error: unknown) => boolean),
  ): Promise<void>;
}

/**
 * A decider spec: `given(events).when(decide).then(events)`.
 *
 * @example
 * ```ts ignore
 * const spec = deciderSpec(options);
 * await spec.given([opened]).when(deposit(5n)).then([deposited(5n)]);
 * ```
 */
export interface DeciderSpec<State, E extends TypedEvent> {
  /** The events already in the aggregate's stream. */
  given(events: readonly E[]): {
    /** The command, as a function of the state that returns the new events. */
    when(decide: (state: State) => E | readonly E[]): DeciderThen<E>;
  };
}

/**
 * Builds a given/when/then specification for a decider. Each run appends
 * the given events (through the codec) to a new {@linkcode InMemoryStore}
 * and handles the command with `handleCommand`, exactly as in production.
 *
 * @example A failing withdrawal and a deposit
 * ```ts
 * import { deciderSpec } from "@getpup/pupsourcing/testing";
 * import { jsonCodec, type TypedEvent } from "@getpup/pupsourcing";
 *
 * type E = TypedEvent<"Deposited", { amount: number }> | TypedEvent<"Withdrawn", { amount: number }>;
 * const spec = deciderSpec<number, E>({
 *   initialState: () => 0,
 *   evolve: (balance, e) => e.type === "Deposited" ? balance + e.data.amount : balance - e.data.amount,
 *   codec: jsonCodec<E>({ events: { Deposited: {}, Withdrawn: {} } }),
 * });
 * const withdraw = (amount: number) => (balance: number): E[] => {
 *   if (balance < amount) throw new RangeError("insufficient funds");
 *   return [{ type: "Withdrawn", data: { amount } }];
 * };
 * await spec.given([{ type: "Deposited", data: { amount: 5 } }]).when(withdraw(3))
 *   .then([{ type: "Withdrawn", data: { amount: 3 } }]);
 * await spec.given([]).when(withdraw(3)).thenThrows(RangeError);
 * ```
 */
export function deciderSpec<State, E extends TypedEvent>(
  options: DeciderSpecOptions<State, E>,
): DeciderSpec<State, E> {
  const { stream = SPEC_STREAM, ...state } = options;
  return {
    given(events) {
      return {
        when(decide) {
          const run = async () => {
            const store = new InMemoryStore();
            if (events.length > 0) {
              await store.append(
                undefined,
                events.map((e) => ({ ...stream, ...state.codec.encode(e) })),
              );
            }
            return await handleCommand(store, undefined, stream, decide, { ...state, retries: 0 });
          };
          return {
            async then(expected) {
              const { newEvents } = await run();
              assert.deepStrictEqual(newEvents, [...expected], "the events decided");
            },
            async thenThrows(expected) {
              let thrown: unknown;
              try {
                await run();
              } catch (error) {
                thrown = error instanceof DeciderError && error.step === "decide"
                  ? error.cause
                  : error;
              }
              if (thrown === undefined) {
                assert.fail("expected the command to throw, but it decided events");
              }
              if (expected === undefined) return;
              const matches = expected.prototype !== undefined &&
                  thrown instanceof (expected as new (...args: never[]) => unknown) ||
                expected.prototype === undefined && (expected as (e: unknown) => boolean)(thrown);
              assert.ok(matches, `expected another error than ${String(thrown)}`);
            },
          };
        },
      };
    },
  };
}

/**
 * An event given to a projection spec: a stored-form `Event`, or a typed
 * event of the projection's codec with its aggregate.
 *
 * @example
 * ```ts
 * import type { GivenEvent } from "@getpup/pupsourcing/testing";
 * import type { TypedEvent } from "@getpup/pupsourcing";
 *
 * type Opened = TypedEvent<"Opened", { owner: string }>;
 * const given: GivenEvent<Opened> = {
 *   aggregateType: "Account",
 *   aggregateId: "a",
 *   type: "Opened",
 *   data: { owner: "ann" },
 * };
 * ```
 */
export type GivenEvent<E extends TypedEvent> = Event | (E & StreamName);

/**
 * Options of {@linkcode projectionSpec}.
 *
 * @example
 * ```ts ignore
 * const spec = projectionSpec(balances, { sql });
 * ```
 */
export interface ProjectionSpecOptions {
  /**
   * The client to run on, on a database migrated for a default
   * `PostgresStore`. Default: a throwaway PostgreSQL (or `DATABASE_URL`)
   * started on the first run and stopped by `close()`.
   */
  // deno-lint-ignore no-explicit-any -- any client configuration
  sql?: Sql<any>;
}

/**
 * A projection spec: `given(events).then(assertions)`.
 *
 * @example
 * ```ts ignore
 * await spec.given(events).then(async (tx) => {
 *   const [row] = await tx`select amount from balances where id = 'a'`;
 *   assert.equal(row.amount, "5");
 * });
 * ```
 */
export interface ProjectionSpec {
  /** The events, appended in this order (one append per event). */
  given(events: readonly GivenEvent<TypedEvent>[]): {
    /**
     * Runs the projection over the events in scope, then `assertions`
     * with the same transaction, which is rolled back afterwards.
     */
    // deno-lint-ignore no-explicit-any -- any client configuration
    then(assertions: (tx: TransactionSql<any>) => Promise<void>): Promise<void>;
  };
  /** Closes the client and stops the throwaway server, when the spec started them. */
  close(): Promise<void>;
}

/** Rolls back a spec's transaction after its assertions passed. */
class Rollback extends Error {}

/**
 * Builds a given/when/then specification for a typed projection, on a
 * real PostgreSQL. Each run opens one transaction: `init`, then each given
 * event is appended and, when in the projection's scope (its aggregate
 * and event types), handed to `handle` as the processor would; then the
 * assertions get the transaction to query the read model; then everything
 * is rolled back, so runs do not see each other.
 *
 * @example
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { projectionSpec } from "@getpup/pupsourcing/testing";
 *
 * const spec = projectionSpec(balances);
 * await spec.given([{ aggregateType: "Account", aggregateId: "a", type: "Deposited", data: { amount: 5 } }])
 *   .then(async (tx) => {
 *     const [row] = await tx`select amount::int from balances where id = 'a'`;
 *     assert.equal(row.amount, 5);
 *   });
 * await spec.close();
 * ```
 */
export function projectionSpec<E extends TypedEvent>(
  projection: TypedProjection<E>,
  options: ProjectionSpecOptions = {},
): ProjectionSpec {
  const store = new PostgresStore({ notifyChannel: false });
  let started: Promise<{ server?: TestDatabase; sql: Sql }> | undefined;
  const connect = () =>
    started ??= (async () => {
      if (options.sql) return { sql: options.sql };
      const server = await startTestDatabase();
      const sql = postgres(await server.createDatabase(), { onnotice: () => {} });
      await migrate(sql, { store });
      return { server, sql };
    })();
  const inScope = (event: { aggregateType: string; eventType: string }) =>
    (projection.aggregateTypes?.includes(event.aggregateType) ?? true) &&
    (projection.eventTypes as readonly string[]).includes(event.eventType);
  return {
    given(events) {
      return {
        async then(assertions) {
          const { sql } = await connect();
          await sql.begin(async (tx) => {
            await projection.init(tx);
            for (const given of events) {
              const event: Event = "payload" in given ? given : {
                aggregateType: given.aggregateType,
                aggregateId: given.aggregateId,
                ...projection.codec.encode(given as unknown as E),
              };
              const [stored] = (await store.append(tx, [event])).events;
              if (inScope(stored)) await projection.handle(stored, tx);
            }
            await assertions(tx);
            throw new Rollback();
          }).catch((error) => {
            if (!(error instanceof Rollback)) throw error;
          });
        },
      };
    },
    async close() {
      if (!started) return;
      const { server, sql } = await started;
      if (!server) return;
      await sql.end({ timeout: 5 });
      await server.stop();
    },
  };
}
