/** Small statistics helpers. */

/** Nearest-rank percentile of an ascending-sorted array (`q` in 0..1); NaN when empty. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1]!;
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** Index of the median element by `key` (the lower median for an even count). */
export function medianIndex<T>(items: readonly T[], key: (t: T) => number): number {
  const order = items.map((t, i) => ({ i, k: key(t) })).sort((a, b) => a.k - b.k);
  return order[Math.floor((order.length - 1) / 2)]!.i;
}
