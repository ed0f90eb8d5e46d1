/**
 * Options objects: checked for shape and for unknown keys, so a misspelt
 * option (`{ expected: 1n }` for `{ expectedVersion: 1n }`) is an error
 * instead of a silent default.
 *
 * @module
 */

import { ValidationError } from "./errors.ts";
import { show } from "./show.ts";

/**
 * Returns `value` as an options object: `undefined` becomes `{}`; anything
 * but a plain object, and any key outside `known`, is refused with the
 * closest known key as a hint.
 *
 * @throws {ValidationError} naming `field` (or `field.key` for an unknown
 * key).
 */
export function checkOptions<T extends object>(
  field: string,
  value: T | undefined,
  known: readonly (keyof T & string)[],
): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError(field, "an options object or undefined", show(value));
  }
  for (const key of Object.keys(value)) {
    if ((known as readonly string[]).includes(key)) continue;
    const hint = closest(key, known);
    throw new ValidationError(
      `${field}.${key}`,
      `one of the known options (${known.join(", ")})`,
      `the unknown option "${key}"` + (hint ? ` (did you mean "${hint}"?)` : ""),
    );
  }
  return value;
}

/** The known key nearest to `key` by edit distance, if reasonably near. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = candidate.toLowerCase().includes(key.toLowerCase())
      ? 0
      : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 2)) ? best : undefined;
}

/** Levenshtein distance, two rows at a time. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
