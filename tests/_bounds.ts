/**
 * Time bounds for the suite: a regression must fail a test, never hang the
 * run. Every test file takes `describe`, `it`, `before` and `after` from
 * here instead of `node:test`: each test and each hook gets a deadline
 * (Deno ignores `node:test`'s hook timeouts, so they are enforced here,
 * the same way under Deno, Node and Bun). Every wait inside a test goes
 * through {@linkcode within} or {@linkcode waitUntil}, which fail with a
 * message naming what was awaited.
 *
 * @module
 */

import * as nodeTest from "node:test";

/** The longest a single test may take. The slowest test of the suite takes ~15 s. */
export const TEST_TIMEOUT_MS = 60_000;

/** The longest a `before`/`after` hook may take (starting or stopping a server). */
export const HOOK_TIMEOUT_MS = 90_000;

/** The error of a wait that ran out of time. */
export class TimedOut extends Error {
  constructor(readonly what: string, readonly ms: number) {
    super(`timed out after ${formatSeconds(ms)} waiting for ${what}`);
    this.name = "TimedOut";
  }
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * Resolves as `promise` does, or rejects with "timed out after X s waiting
 * for `what`" if it has not settled within `ms`.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut(what, ms)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `check` every `interval` ms until it holds; rejects with "timed out
 * after X s waiting for `what`" after `ms`. The polling stops with it: a
 * failed wait leaves nothing running.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
  interval = 10,
): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await within(Promise.resolve(check()), Math.max(1, deadline - performance.now()), what)) {
      return;
    }
    if (performance.now() >= deadline) throw new TimedOut(what, ms);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

type TestFn = (context: nodeTest.TestContext) => void | Promise<void>;
type TestOptions = { timeout?: number; skip?: boolean | string; todo?: boolean | string };

function bounded(name: string, fn: TestFn, ms: number): TestFn {
  return async (context) => {
    await within(Promise.resolve().then(() => fn(context)), ms, `the test "${name}" to finish`);
  };
}

/** `node:test`'s `describe`. */
export const describe: typeof nodeTest.describe = nodeTest.describe;

/**
 * `node:test`'s `it`, with a deadline: `options.timeout`, or
 * {@linkcode TEST_TIMEOUT_MS}.
 */
export function it(name: string, fn: TestFn): void;
export function it(name: string, options: TestOptions, fn: TestFn): void;
export function it(name: string, a: TestOptions | TestFn, b?: TestFn): void {
  const options = typeof a === "function" ? {} : a;
  const fn = typeof a === "function" ? a : b!;
  const ms = options.timeout ?? TEST_TIMEOUT_MS;
  // The runner's own timeout too, slightly later: ours names the test and
  // works in Deno's and Bun's node:test alike.
  void nodeTest.it(name, { ...options, timeout: ms + 5_000 }, bounded(name, fn, ms));
}

function hook(
  register: (fn: () => Promise<unknown>) => void,
  kind: string,
): (fn: () => unknown, ms?: number) => void {
  return (fn, ms = HOOK_TIMEOUT_MS) =>
    register(() => within(Promise.resolve().then(fn), ms, `the ${kind} hook to finish`));
}

/** `node:test`'s `before`, with a deadline ({@linkcode HOOK_TIMEOUT_MS} by default). */
export const before: (fn: () => unknown, ms?: number) => void = hook(
  (fn) => nodeTest.before(fn),
  "before",
);
/** `node:test`'s `after`, with a deadline ({@linkcode HOOK_TIMEOUT_MS} by default). */
export const after: (fn: () => unknown, ms?: number) => void = hook(
  (fn) => nodeTest.after(fn),
  "after",
);
/** `node:test`'s `beforeEach`, with a deadline. */
export const beforeEach: (fn: () => unknown, ms?: number) => void = hook(
  (fn) => nodeTest.beforeEach(fn),
  "beforeEach",
);
/** `node:test`'s `afterEach`, with a deadline. */
export const afterEach: (fn: () => unknown, ms?: number) => void = hook(
  (fn) => nodeTest.afterEach(fn),
  "afterEach",
);
