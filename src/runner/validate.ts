/**
 * Input checks of the runner, run before any worker starts.
 *
 * @module
 */

import { ValidationError } from "../es/errors.ts";
import { show } from "../es/validate.ts";
import type { Projection } from "../projection/mod.ts";
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
