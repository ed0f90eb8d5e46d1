/**
 * One member of a projection's consumer group: its heartbeat, and the
 * balance it keeps. With N live members each owns ⌊S/N⌋ or ⌈S/N⌉ of the S
 * segments: members sorted by id, the first `S mod N` take one more. A
 * member above its share releases segments, one below takes free or
 * expired ones; all of it between batches, never during one.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Logger } from "../es/logger.ts";
import type { ResolvedGroup } from "./group_options.ts";
import {
  acquireLeases,
  endStalledHolders,
  type GroupKey,
  heartbeat,
  leaveGroup,
  releaseLeases,
} from "./leases.ts";
import { PartitioningModeError } from "./mode_conflict.ts";

/**
 * How many of `segments` the member at `index` of `members` (sorted by
 * id) owns once the group has settled: ⌊S/N⌋, plus one for the first
 * `S mod N` members. The shares add up to `segments`.
 */
function shareOf(index: number, members: number, segments: number): number {
  return Math.floor(segments / members) + (index < segments % members ? 1 : 0);
}

/** How soon a member short of its share beats again. */
const SHORT_RETRY_MS = 100;

/**
 * A group member as its processor sees it: the segments it may work on,
 * and when its next heartbeat is due.
 */
export class GroupMember {
  #owned: readonly number[] = [];
  #lastBeat = -Infinity;
  #validUntil = -Infinity;
  #short = false;
  readonly #key: GroupKey;
  readonly #segments: number;
  readonly #options: ResolvedGroup;
  readonly #logger: Logger | undefined;

  constructor(key: GroupKey, segments: number, options: ResolvedGroup, logger?: Logger) {
    this.#key = key;
    this.#segments = segments;
    this.#options = options;
    this.#logger = logger;
  }

  /** This member's id. */
  get id(): string {
    return this.#options.memberId;
  }

  /**
   * The segments this member holds, ascending; none once its last
   * successful heartbeat is `leaseMs` old by the local clock (counted from
   * when the heartbeat was sent, so before the database lets the lease
   * run out): a member cut off from the database stops working before
   * another may take its segments.
   */
  get owned(): readonly number[] {
    return performance.now() < this.#validUntil ? this.#owned : [];
  }

  /**
   * Milliseconds until the next heartbeat is due; 0 when due. A member
   * short of its share tries again within {@linkcode SHORT_RETRY_MS}, to
   * pick up segments as soon as their owners release them (members that
   * start together take turns on the rows for a moment).
   */
  dueIn(): number {
    const interval = this.#short
      ? Math.min(SHORT_RETRY_MS, this.#options.heartbeatMs)
      : this.#options.heartbeatMs;
    return Math.max(0, this.#lastBeat + interval - performance.now());
  }

  /**
   * Heartbeats and rebalances: renews membership and leases, then
   * releases segments above this member's share or takes free ones up to
   * it. Returns the segments held.
   *
   * @throws {PartitioningModeError} when a static worker moved one of the
   * projection's segments within `leaseMs`.
   */
  // deno-lint-ignore no-explicit-any -- any client configuration
  async beat(sql: Sql<any>): Promise<readonly number[]> {
    const { memberId, leaseMs } = this.#options;
    const sent = performance.now();
    const beat = await heartbeat(sql, this.#key, memberId, leaseMs);
    if (beat.staticSegment !== undefined) {
      throw new PartitioningModeError(
        this.#key.name,
        "group",
        beat.staticSegment,
        "static workers",
      );
    }
    const members = [...beat.others, memberId].sort();
    const share = shareOf(members.indexOf(memberId), members.length, this.#segments);
    let owned = beat.owned;
    if (owned.length > share) {
      const released = await releaseLeases(sql, this.#key, memberId, owned.slice(share));
      owned = owned.filter((segment) => !released.includes(segment));
      this.#log("group member released segments", { released, members: members.length });
    } else if (owned.length < share) {
      const taken = await acquireLeases(sql, this.#key, memberId, leaseMs, share - owned.length);
      if (taken.length > 0) {
        owned = [...owned, ...taken].sort((a, b) => a - b);
        this.#log("group member took segments", { taken, members: members.length });
      }
      if (owned.length < share) await this.#endStalled(sql);
    }
    this.#owned = owned;
    this.#short = owned.length < share;
    this.#lastBeat = sent;
    this.#validUntil = sent + leaseMs;
    return owned;
  }

  /**
   * Leaves the group: releases every lease and the membership, so the
   * others take the segments at their next heartbeat. Never throws: a
   * member that cannot reach the database leaves its leases to run out.
   * Gives up after `leaseMs`, when they have run out anyway.
   */
  // deno-lint-ignore no-explicit-any -- any client configuration
  async leave(sql: Sql<any>): Promise<void> {
    this.#owned = [];
    this.#validUntil = -Infinity;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#options.leaseMs);
    });
    try {
      await Promise.race([leaveGroup(sql, this.#key, this.#options.memberId), late]);
      this.#log("group member left", {});
    } catch (error) {
      this.#logger?.error("group member could not leave; its leases will run out", {
        projection: this.#key.name,
        memberId: this.#options.memberId,
        error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Short of its share: ends the sessions of members stuck in a batch
   * long past their lease (see `endStalledHolders`), so the next beat can
   * take their segments. Not allowed to (another role): logs it.
   */
  // deno-lint-ignore no-explicit-any -- any client configuration
  async #endStalled(sql: Sql<any>): Promise<void> {
    try {
      const ended = await endStalledHolders(sql, this.#key, this.id, this.#options.leaseMs);
      if (ended > 0) this.#log("group member ended stalled members' sessions", { ended });
    } catch (error) {
      if ((error as { code?: string }).code !== "42501") throw error;
      this.#logger?.error("group member may not end a stalled member's session", {
        projection: this.#key.name,
        memberId: this.id,
        error,
      });
    }
  }

  #log(message: string, fields: Record<string, unknown>): void {
    this.#logger?.info(message, {
      projection: this.#key.name,
      memberId: this.#options.memberId,
      ...fields,
    });
  }
}
