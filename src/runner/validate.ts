/**
 * Input checks of the runner, run before any worker starts.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import type { Projection, RunMode } from "../projection/mod.ts";
import { validateProjection as checkProjection } from "../projection/projection.ts";

/**
 * Throws unless `value` is a valid {@linkcode Projection} (the processor's
 * own checks), naming the field as `field` (such as `projections[2].projection`).
 */
export function validateProjection(field: string, value: unknown): Projection {
  try {
    checkProjection(value as Projection);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const path = field + error.field.slice("projection".length);
    throw new ValidationError(path, error.expected, error.got);
  }
  return value as Projection;
}

/** Throws unless `value` is a positive safe integer. */
export function positiveInteger(field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError(field, "a positive integer", show(value));
  }
  return value;
}

/** Throws unless `signal` is undefined or an AbortSignal. */
export function optionalSignal(field: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new ValidationError(field, "an AbortSignal or undefined", show(signal));
}

/** Throws unless `mode` is undefined or a {@linkcode RunMode}. */
export function optionalMode(field: string, mode: unknown): RunMode | undefined {
  if (mode === undefined || mode === "continuous" || mode === "until_caught_up") return mode;
  throw new ValidationError(field, `"continuous", "until_caught_up" or undefined`, show(mode));
}
