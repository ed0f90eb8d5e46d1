/**
 * The options of group mode: a member's id, its lease and its heartbeat,
 * validated before anything runs.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { checkOptions } from "../es/options.ts";
import { show } from "../es/show.ts";

/**
 * Group mode of a processor: instead of a fixed partition, the worker joins
 * its projection's consumer group and is given segments through leases in
 * PostgreSQL. With N live members each owns ⌊S/N⌋ or ⌈S/N⌉ of the S
 * segments; members may come and go at any time.
 *
 * - `memberId`: this member's id, shown in the ownership report and the
 *   log; default: a random UUID. Letters, digits and `. _ - : @ /`, at
 *   most 128 characters (a host or pod name fits). Two live processes must
 *   not share one.
 * - `leaseMs`: how long a lease (and a membership) lasts without a
 *   heartbeat; default 10000. A crashed member's segments are taken over
 *   this long after its last heartbeat.
 * - `heartbeatMs`: how often the member renews its leases and rebalances,
 *   between batches; default a third of `leaseMs`. Below `leaseMs`.
 *
 * @example A pod that joins the group under its own name
 * ```ts
 * import type { GroupOptions } from "@getpup/pupsourcing/projection";
 *
 * const group: GroupOptions = { memberId: "orders-worker-7f9c", leaseMs: 15_000 };
 * ```
 */
export interface GroupOptions {
  /** This member's id; default: a random UUID. */
  memberId?: string;
  /** Lease length in milliseconds, judged by the database's clock; default 10000. */
  leaseMs?: number;
  /** Milliseconds between heartbeats; default `leaseMs / 3`. */
  heartbeatMs?: number;
}

/**
 * {@linkcode GroupOptions}, validated, with every default filled in: what
 * a processor's `config.group` holds.
 *
 * @example
 * ```ts
 * import type { ResolvedGroup } from "@getpup/pupsourcing/projection";
 *
 * const describe = (g: ResolvedGroup) => `${g.memberId}: lease ${g.leaseMs} ms`;
 * ```
 */
export interface ResolvedGroup {
  /** This member's id. */
  memberId: string;
  /** Lease length in milliseconds. */
  leaseMs: number;
  /** Milliseconds between heartbeats. */
  heartbeatMs: number;
}

/**
 * The default lease length, in milliseconds: a crashed member's segments
 * wait this long before the others take them.
 *
 * @example
 * ```ts
 * import { DEFAULT_LEASE_MS } from "@getpup/pupsourcing/projection";
 *
 * console.log(DEFAULT_LEASE_MS); // 10000
 * ```
 */
export const DEFAULT_LEASE_MS = 10_000;

const KEYS: readonly (keyof GroupOptions)[] = ["memberId", "leaseMs", "heartbeatMs"];

/** What a member id may be: what hosts, pods and UUIDs are made of. */
const MEMBER_ID = /^[A-Za-z0-9._:@/-]{1,128}$/;

/** setTimeout's limit (about 24.8 days). */
const MAX_DELAY = 2_147_483_647;

/**
 * Validates `options` (the processor's `group`) and fills in the defaults.
 *
 * @throws {ValidationError} naming `group.<key>`: an unknown key, a member
 * id with other characters, a lease or heartbeat that is not a positive
 * number of milliseconds, a heartbeat not below the lease.
 */
export function resolveGroup(options: GroupOptions): ResolvedGroup {
  const group = checkOptions("group", options, KEYS);
  const memberId = group.memberId ?? crypto.randomUUID();
  if (typeof memberId !== "string" || !MEMBER_ID.test(memberId)) {
    throw new ValidationError(
      "group.memberId",
      "1 to 128 letters, digits or . _ - : @ / (a host or pod name, a UUID)",
      show(memberId),
    );
  }
  const leaseMs = group.leaseMs ?? DEFAULT_LEASE_MS;
  if (!isDelay(leaseMs) || leaseMs < 2) {
    throw new ValidationError(
      "group.leaseMs",
      `milliseconds, from 2 to ${MAX_DELAY}`,
      show(leaseMs),
    );
  }
  const heartbeatMs = group.heartbeatMs ?? Math.max(1, Math.floor(leaseMs / 3));
  if (!isDelay(heartbeatMs) || heartbeatMs < 1 || heartbeatMs >= leaseMs) {
    throw new ValidationError(
      "group.heartbeatMs",
      `a positive number of milliseconds below leaseMs (${leaseMs}): a lease must be ` +
        `renewed before it runs out`,
      show(heartbeatMs),
    );
  }
  return { memberId, leaseMs, heartbeatMs };
}

function isDelay(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value <= MAX_DELAY;
}
