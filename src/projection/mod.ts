/**
 * Placeholder: the projection module is being built (see the projections issue).
 *
 * @module
 */

export {};
