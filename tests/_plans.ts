/**
 * Reading `EXPLAIN (FORMAT JSON)` plans, for the tests that check which
 * nodes a statement's plan reads the events table with.
 *
 * @module
 */

/** A node of an `EXPLAIN (FORMAT JSON)` plan. */
export interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

/** The plan's nodes, flattened. */
export function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}
