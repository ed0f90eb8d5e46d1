/**
 * Snapshot policies: when an aggregate's state is kept as a snapshot, and
 * how. A snapshot is written in the transaction of the append whose
 * events cross a multiple of `every`, so it is never ahead of the stream;
 * a snapshot of another shape `version` than the policy's is ignored.
 *
 * @module
 */

import { ValidationError } from "./errors.ts";
import { fromJsonBytes, toJsonBytes } from "./json.ts";
import { checkOptions } from "./options.ts";
import { show } from "./show.ts";
import type { SnapshotStore } from "./store.ts";

/**
 * A snapshot policy: where snapshots go, how often, and the state's shape
 * version. Change `version` whenever the state's shape changes: older
 * snapshots are then ignored and replaced as the aggregate moves on.
 *
 * @example Every 100 events, in memory
 * ```ts
 * import { InMemoryStore, type SnapshotPolicy } from "@getpup/pupsourcing";
 *
 * const policy: SnapshotPolicy<{ balance: bigint }, unknown> = {
 *   store: new InMemoryStore(),
 *   every: 100,
 *   version: 1,
 * };
 * ```
 */
export interface SnapshotPolicy<State, Db> {
  /** Where snapshots are kept: `PostgresSnapshotStore`, or an `InMemoryStore`. */
  store: SnapshotStore<Db>;
  /** A snapshot each time the version crosses a multiple of this (an integer >= 1). */
  every: number;
  /** The state's shape version (an integer >= 1). */
  version: number;
  /** The state as bytes; default: bigint-safe JSON. */
  encode?: (state: State) => Uint8Array;
  /** The state of bytes written by `encode`; default: bigint-safe JSON. */
  decode?: (bytes: Uint8Array) => State;
}

/** A checked policy with its defaults filled in. */
export interface ValidSnapshotPolicy<State, Db> {
  store: SnapshotStore<Db>;
  every: bigint;
  version: number;
  encode: (state: State) => Uint8Array;
  decode: (bytes: Uint8Array) => State;
}

/**
 * Checks a policy and fills in the defaults.
 *
 * @throws {ValidationError} naming the field: `every` or `version` not an
 * integer >= 1, a store without `readSnapshot`, `writeSnapshot` and
 * `transaction`, or an unknown key.
 */
export function validateSnapshotPolicy<State, Db>(
  field: string,
  policy: SnapshotPolicy<State, Db>,
): ValidSnapshotPolicy<State, Db> {
  const { store, every, version, encode, decode } = checkOptions(field, policy, [
    "store",
    "every",
    "version",
    "encode",
    "decode",
  ]);
  const methods = ["readSnapshot", "writeSnapshot", "transaction"] as const;
  if (
    typeof store !== "object" || store === null ||
    methods.some((m) => typeof store[m] !== "function")
  ) {
    throw new ValidationError(
      `${field}.store`,
      "a snapshot store (new PostgresSnapshotStore(store), or an InMemoryStore)",
      show(store),
    );
  }
  for (const [name, value] of [["every", every], ["version", version]] as const) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new ValidationError(`${field}.${name}`, "an integer >= 1", show(value));
    }
  }
  for (const [name, value] of [["encode", encode], ["decode", decode]] as const) {
    if (value !== undefined && typeof value !== "function") {
      throw new ValidationError(`${field}.${name}`, "a function or undefined", show(value));
    }
  }
  return {
    store,
    every: BigInt(every!),
    version: version!,
    encode: encode ?? toJsonBytes,
    decode: decode ?? ((bytes) => fromJsonBytes(bytes) as State),
  };
}

/** Whether an append from version `from` to `to` crosses a multiple of `every`. */
export function crossesSnapshot(every: bigint, from: bigint, to: bigint): boolean {
  return from / every < to / every;
}
