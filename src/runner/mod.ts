/**
 * Placeholder: the runner module is being built (see the projections issue).
 *
 * @module
 */

export {};
