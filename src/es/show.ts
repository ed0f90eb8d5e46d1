/**
 * How error messages render the values they report: briefly, and the way
 * a caller writes them in code (`3n` for a bigint, quotes for a string), so
 * a message never mixes `3n` and `3` for the same kind of value.
 *
 * @module
 */

/**
 * Renders any value briefly for an error message: `"abc"`, `3n`,
 * `number 1.5`, `an array of 2`, `an object`, `an instance of Map`,
 * `Date 2020-01-01T00:00:00.000Z`, `function onEvent`.
 */
export function show(value: unknown): string {
  if (typeof value === "string") {
    // JSON escapes what would hide in a message: NUL, lone surrogates.
    return value.length > 60 ? `${JSON.stringify(value.slice(0, 57))}...` : JSON.stringify(value);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || value === undefined) return String(value);
  if (value instanceof Date) {
    return isNaN(value.getTime()) ? "an invalid Date" : `Date ${value.toISOString()}`;
  }
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (typeof value === "object") {
    const prototype = Object.getPrototypeOf(value);
    // "an instance of" is grammatical before any class name (a Uint8Array, an Event).
    return prototype === null || prototype === Object.prototype
      ? "an object"
      : `an instance of ${prototype.constructor?.name || "an anonymous class"}`;
  }
  return `${typeof value} ${String(value)}`;
}
