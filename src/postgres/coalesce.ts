/**
 * Append coalescing: concurrent appends on one pool share a statement and
 * a commit.
 *
 * An append costs PostgreSQL a parse, a plan, a round trip and a WAL
 * flush whatever its size, so appends that arrive together go faster as
 * one statement. While the connections that may carry statements all
 * do, further appends wait in a queue; when a statement ends, the queued
 * ones go as one append to several aggregates (the statement of
 * `appendMany`, in one transaction). An idle store sends each append at
 * once, alone: a lone append waits for nothing, and with no more appends
 * than connections (nor any more for 5 ms) nothing changes.
 *
 * How many statements fly at once depends on the load. With no more
 * appends pending than the pool has connections, every one goes at once:
 * eight callers on a pool of eight queue behind nothing (holding half the
 * pool back there cost W1-8 a fifth of its rate, and W2 a tenth). With
 * more pending, a quarter of the connections carry statements (at least
 * two), and a statement goes beside another once the queue holds its
 * share of the pending appends; the store stays so for 5 ms after the
 * crowd. What a statement costs whatever it carries is paid less often;
 * no queued append waits more than 20 ms while a connection is free (see
 * `#maySend`).
 *
 * Each caller keeps the outcome its append gets alone:
 *
 * - A statement holds one append per aggregate, and an aggregate has one
 *   append in flight at a time: a later append to it waits until the
 *   earlier one has settled (run alone again after a failure included),
 *   so an aggregate's appends commit in their order. A statement holds
 *   each event id once, so no append changes what another means.
 * - The shared statement stores all of its appends or none. When one of
 *   them refuses it (its expected version, or an event id stored already),
 *   that append runs alone, where it gets its conflict, its duplicate or
 *   its earlier result, and the others go back to the head of the queue.
 * - When the statement fails as a whole (a lost connection, for one), it
 *   may or may not have committed: each append then runs alone with the
 *   same event ids, so one that was stored gets its earlier result back as
 *   an exact retry, and one that was not is stored now. Nothing is written
 *   twice; a caller whose retry fails too gets that error.
 * - A shared statement waits on a row lock for at most a second (unless
 *   the session's `lock_timeout` says otherwise), then fails as a whole: its
 *   appends run alone, each waiting only on its own aggregate, as without
 *   coalescing (see `LOCK_WAIT_MS`).
 * - A promise resolves only once the statement that holds its events has
 *   committed (each statement commits on its own). The wake-up NOTIFY
 *   follows each statement, not each caller (see notify.ts).
 *
 * @module
 */

import type { AppendResult, Event, ExpectedVersion } from "../es/event.ts";
import { uuidv7 } from "../es/uuid.ts";
import type { ValidAppend } from "../es/validate.ts";
import { append, type AppendContext, appendTogether } from "./append.ts";
import { isConnectionLoss } from "./connection_loss.ts";
import type { Db } from "./db.ts";

/**
 * How long a queue waits for its share of the pending appends before it
 * goes beside a statement in flight anyway. Back to back, the callers of
 * a statement that ends append again well within it (a statement of 25
 * takes them about half a millisecond of client time).
 */
const SHARE_WAIT_MS = 2;

/**
 * How long queued appends wait, while connections are free, for one of
 * the quarter's statements to end. Longer than a statement takes under
 * load (2-4 ms at 64 callers), so it never fires there; it bounds the
 * wait when those statements wait on locks, perhaps held by a caller
 * whose next append is the one queued.
 */
const QUARTER_WAIT_MS = 20;

/**
 * How long the store stays crowded after more appends were pending than
 * the pool has connections. A statement that ends settles all its callers
 * at once, so for a moment few appends are pending, and the first callers
 * to append again each went alone on a free connection, ahead of the rest:
 * under Node, six statements of one append for every shared one.
 */
const CROWD_MEMORY_MS = 5;

/**
 * The most a shared statement waits for a row lock (unless the session's
 * own `lock_timeout` is set); then its appends run alone. A shared statement
 * ties its callers together: one that waits on a head locked by a
 * caller's transaction holds the others' heads meanwhile, and that caller
 * may be waiting, in JavaScript where PostgreSQL sees no deadlock, for an
 * append to one of them. Alone, each waits only on its own aggregate, as
 * it would without coalescing. As long as PostgreSQL's `deadlock_timeout`
 * (1 s by default): a shared statement takes a few milliseconds, so only
 * such a wait, or a transaction holding a head that long, reaches it.
 */
const LOCK_WAIT_MS = 1000;

/** How appends are coalesced: the most events one statement carries. */
export interface CoalesceLimits {
  /** The most events a coalesced statement carries; a larger append goes alone. */
  readonly maxEvents: number;
}

/** An append waiting in the queue. */
interface Waiting {
  /** The caller's events. */
  readonly events: readonly Event[];
  /** The same with every event id set, for the shared statement and its retries. */
  readonly append: ValidAppend;
  readonly ids: readonly string[];
  /** The aggregate, as a key: `type.length:type id`. */
  readonly key: string;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
  /** Stops listening to the caller's signal: once the append is sent. */
  readonly sent: () => void;
}

/** The queue of one store on one pool. */
export class Coalescer {
  readonly #db: Db;
  readonly #store: AppendContext;
  readonly #limits: CoalesceLimits;
  /** How many statements may be in flight: the pool's connections. */
  readonly #slots: number;
  /** How many while more appends are pending than the pool has connections. */
  readonly #crowdedSlots: number;
  #inFlight = 0;
  /** Appends taken and not settled yet: queued or in flight. */
  #pending = 0;
  #queue: Waiting[] = [];
  /**
   * The appends of statements that failed as a whole, each to run alone
   * again, no more at once than the pool has connections: postgres.js
   * sends a query that finds none idle behind one in flight, which may be
   * a retry waiting on a lock.
   */
  #retries: Waiting[] = [];
  /** Armed while the queue waits for its share or for the quarter (see `#waitAtMost`). */
  #waitTimer: ReturnType<typeof setTimeout> | undefined;
  /** When `#waitTimer` fires. */
  #waitEnds = Infinity;
  /** Set while the timer's drain runs: every free connection may carry a statement. */
  #waitOver = false;
  /** When more appends were last pending than the pool has connections. */
  #crowdedAt = -Infinity;
  /** The aggregates with an append in flight, by key: their queued appends wait. */
  readonly #busy = new Set<string>();

  constructor(db: Db, store: AppendContext, limits: CoalesceLimits) {
    this.#db = db;
    this.#store = store;
    this.#limits = limits;
    const max = (db as { options?: { max?: unknown } }).options?.max;
    this.#slots = typeof max === "number" && max >= 1 ? max : 10;
    this.#crowdedSlots = Math.min(this.#slots, Math.max(2, Math.floor(this.#slots / 4)));
  }

  /**
   * Appends validated events to one aggregate; resolves after the commit
   * that holds them. An abort of `signal` while the append waits in the
   * queue drops it (it rejects with the signal's reason); once it is sent,
   * its outcome arrives.
   */
  append(
    events: readonly Event[],
    expected: ExpectedVersion,
    signal?: AbortSignal,
  ): Promise<AppendResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Nothing waits and a statement may go: sent at once, alone, with none
    // of the queue's bookkeeping (a lone caller appends as fast as without
    // coalescing).
    const { aggregateType, aggregateId } = events[0];
    const key = `${aggregateType.length}:${aggregateType} ${aggregateId}`;
    this.#pending++;
    if (this.#pending > this.#slots) this.#crowdedAt = performance.now();
    if (this.#queue.length === 0 && this.#maySend(1) && !this.#busy.has(key)) {
      return this.#sendAlone(key, events, expected);
    }
    const withIds = events.map((event) =>
      event.eventId === undefined ? { ...event, eventId: uuidv7() } : event
    );
    return new Promise<AppendResult>((resolve, reject) => {
      const drop = () => {
        const at = this.#queue.indexOf(waiting);
        if (at < 0) return;
        this.#queue.splice(at, 1);
        waiting.reject(signal!.reason);
        // One append fewer pending may end the crowding, or lower the share.
        if (this.#queue.length === 0) this.#stopWaiting();
        else this.#drain();
      };
      const waiting: Waiting = {
        events,
        append: { events: withIds, expected },
        ids: withIds.map((event) => event.eventId!.toLowerCase()),
        key,
        resolve: (result) => {
          this.#pending--;
          resolve(result);
        },
        reject: (error) => {
          this.#pending--;
          reject(error);
        },
        sent: () => signal?.removeEventListener("abort", drop),
      };
      signal?.addEventListener("abort", drop, { once: true });
      this.#queue.push(waiting);
      this.#drain();
    });
  }

  /** Runs one append as a statement of its own, in one of the statements in flight. */
  async #sendAlone(
    key: string,
    events: readonly Event[],
    expected: ExpectedVersion,
  ): Promise<AppendResult> {
    this.#inFlight++;
    this.#busy.add(key);
    try {
      return await append(this.#db, this.#store, events, expected);
    } finally {
      this.#inFlight--;
      this.#pending--;
      this.#busy.delete(key);
      this.#drain();
    }
  }

  /**
   * Whether a statement carrying `queued` appends may go now. With none in
   * flight, always: nothing else would send it. While not crowded (no more
   * appends pending than the pool has connections, for `CROWD_MEMORY_MS`),
   * while a connection is free. Crowded, a quarter of the connections (at
   * least two) carry statements, and one goes beside another once the
   * queue holds its share of the pending appends. Both are preferences
   * with a bound: the statements in flight may be waiting themselves, on a
   * lock that the caller of a queued append would release once that
   * append is done. So a queue that waits for its share goes after
   * `SHARE_WAIT_MS`, and one that waits for the quarter after
   * `QUARTER_WAIT_MS`, on any free connection.
   *
   * 64 callers on a pool of 8, two cores, back to back, in 6-second runs,
   * appends per second and per statement:
   *
   * | | Deno | Node |
   * |---|---|---|
   * | a statement whenever a connection of the quarter is free | 10-12.3k, 12-13 | 8.8-11.3k, 9-11 |
   * | and only with its share | 14.4-19.5k, 22-25 | (as above) |
   * | and crowded for 5 ms after | 18.7-19.5k, 30 | 16.1-17.5k, 31 |
   * | uncoalesced | 5.2k, 1 | 4.9-5.3k, 1 |
   *
   * Sent as soon as a connection was free, the first appends made after a
   * statement ended went alone and the rest waited behind them. Three or
   * four statements in flight with the share rule did no better.
   */
  #maySend(queued: number): boolean {
    if (this.#inFlight === 0) return true;
    if (!this.#crowded() || this.#waitOver) return this.#inFlight < this.#slots;
    if (this.#inFlight < this.#crowdedSlots) {
      if (queued >= Math.ceil(this.#pending / this.#crowdedSlots)) return true;
      this.#waitAtMost(SHARE_WAIT_MS);
    } else if (this.#inFlight < this.#slots) this.#waitAtMost(QUARTER_WAIT_MS);
    return false;
  }

  /**
   * Makes sure the queue is drained within `ms`, with every free
   * connection allowed, if no statement goes before.
   */
  #waitAtMost(ms: number): void {
    const ends = performance.now() + ms;
    if (this.#waitTimer !== undefined && this.#waitEnds <= ends) return;
    clearTimeout(this.#waitTimer);
    this.#waitEnds = ends;
    this.#waitTimer = setTimeout(() => {
      this.#stopWaiting();
      this.#waitOver = true;
      try {
        this.#drain();
      } finally {
        this.#waitOver = false;
      }
    }, ms);
  }

  /** More appends are pending than the pool has connections, or were within `CROWD_MEMORY_MS`. */
  #crowded(): boolean {
    return this.#pending > this.#slots || performance.now() - this.#crowdedAt < CROWD_MEMORY_MS;
  }

  /** Stops the wait of `#waitAtMost`: a statement went, or nothing is queued. */
  #stopWaiting(): void {
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#waitEnds = Infinity;
  }

  /**
   * Sends the retries while connections are free, then what the queue
   * holds while a statement may go (see `#maySend`).
   */
  #drain(): void {
    while (this.#retries.length > 0 && this.#inFlight < this.#slots) {
      const waiting = this.#retries.shift()!;
      this.#carry(() => this.#alone(waiting, waiting.append.events, 3));
    }
    while (this.#queue.length > 0 && this.#maySend(this.#queue.length)) {
      const batch = this.#take();
      if (batch.length === 0) return; // every queued aggregate has an append in flight
      this.#stopWaiting();
      for (const waiting of batch) {
        waiting.sent();
        this.#busy.add(waiting.key);
      }
      this.#carry(() => this.#send(batch));
    }
  }

  /** Sends a statement, counted in flight until it settles (it never rejects); then drains again. */
  #carry(send: () => Promise<void>): void {
    this.#inFlight++;
    void send().finally(() => {
      this.#inFlight--;
      this.#drain();
    });
  }

  /**
   * The next statement's appends, in queue order: every one that fits
   * (events within the limit unless it is the first, its aggregate not in
   * flight nor in the statement yet, its ids not in the statement yet). An
   * append to an aggregate that was passed over is passed over too, so an
   * aggregate's appends keep their order. Empty when every queued
   * aggregate has an append in flight.
   */
  #take(): Waiting[] {
    const batch: Waiting[] = [];
    const keys = new Set<string>();
    const passed = new Set<string>(this.#busy);
    const ids = new Set<string>();
    let events = 0;
    const rest: Waiting[] = [];
    for (const waiting of this.#queue) {
      const fits = (batch.length === 0 || events + waiting.ids.length <= this.#limits.maxEvents) &&
        !keys.has(waiting.key) && !passed.has(waiting.key) &&
        !waiting.ids.some((id) => ids.has(id));
      if (!fits) {
        passed.add(waiting.key);
        rest.push(waiting);
        continue;
      }
      batch.push(waiting);
      keys.add(waiting.key);
      for (const id of waiting.ids) ids.add(id);
      events += waiting.ids.length;
    }
    this.#queue = rest;
    return batch;
  }

  /**
   * Sends `batch` and settles each caller (after a failure as a whole,
   * through appends of their own); each aggregate is no longer busy once
   * its caller is.
   */
  async #send(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return await this.#alone(batch[0], batch[0].events);
    let outcome: AppendResult[] | number;
    try {
      outcome = await appendTogether(
        this.#db,
        this.#store,
        batch.map((w) => w.append),
        LOCK_WAIT_MS,
      );
    } catch {
      // Failed as a whole: it lost its connection (and may have committed
      // before it went), or waited on a row lock longer than LOCK_WAIT_MS.
      // Each append runs alone with the same ids, and a stored one comes
      // back as an exact retry (sent by `#drain` once this one's
      // connection is free).
      this.#retries.push(...batch);
      return;
    }
    if (typeof outcome === "number") {
      // Nothing was stored: the append at fault gets its own outcome alone,
      // the others go first in the next statement.
      const [fault] = batch.splice(outcome, 1);
      for (const waiting of batch) this.#busy.delete(waiting.key);
      this.#queue.unshift(...batch);
      this.#drain();
      return await this.#alone(fault, fault.events);
    }
    batch.forEach((waiting, i) => {
      this.#busy.delete(waiting.key);
      waiting.resolve(outcome[i]);
    });
  }

  /**
   * Runs one append as a statement of its own and settles its caller,
   * trying again up to `attempts` times in all while the connection is
   * lost (postgres.js may hand the next statement to the connection that
   * just died).
   */
  async #alone(waiting: Waiting, events: readonly Event[], attempts = 1): Promise<void> {
    try {
      for (let attempt = 1;; attempt++) {
        try {
          return waiting.resolve(
            await append(this.#db, this.#store, events, waiting.append.expected),
          );
        } catch (error) {
          if (attempt >= attempts || !isConnectionLoss(error)) return waiting.reject(error);
        }
      }
    } finally {
      this.#busy.delete(waiting.key);
    }
  }
}
