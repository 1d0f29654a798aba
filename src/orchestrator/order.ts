/**
 * Dependency order: a topological sort that also finds cycles. Sans-IO, used by the spec loader
 * (to refuse a cycle) and the supervisor (to start in order and stop in reverse).
 */

/** A cycle, as the list of names along it, first name repeated at the end (`a → b → a`). */
export type Cycle = string[];

/**
 * Orders `names` so every name comes after the names it depends on (`deps(name)`, restricted to
 * `names`); ties keep the given order. Returns the order, or the first cycle found.
 */
export function dependencyOrder(
  names: readonly string[],
  deps: (name: string) => readonly string[],
): { order: string[] } | { cycle: Cycle } {
  const known = new Set(names);
  const state = new Map<string, "visiting" | "done">();
  const order: string[] = [];
  const stack: string[] = [];
  const visit = (n: string): Cycle | undefined => {
    const s = state.get(n);
    if (s === "done") return undefined;
    if (s === "visiting") return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, "visiting");
    stack.push(n);
    for (const d of deps(n)) {
      if (!known.has(d)) continue;
      const c = visit(d);
      if (c !== undefined) return c;
    }
    stack.pop();
    state.set(n, "done");
    order.push(n);
    return undefined;
  };
  for (const n of names) {
    const c = visit(n);
    if (c !== undefined) return { cycle: c };
  }
  return { order };
}
