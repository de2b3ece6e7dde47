// "did you mean …?" for misspelt keys and enum values.

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (`ttl` ↔ `tll`). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2][j - 2] + 1);
      }
      d[i][j] = best;
    }
  }
  return d[a.length][b.length];
}

/**
 * The closest candidate, if it is close enough to be a plausible typo or a truncated/extended spelling
 * (`warning` → `warn`, `max_cache_size` → `max_cache_size_mb`).
 */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const needle = input.toLowerCase();
  const list = [...candidates];
  const affix = list.find((c) => {
    const lower = c.toLowerCase();
    return Math.min(lower.length, needle.length) >= 3 && (lower.startsWith(needle) || needle.startsWith(lower));
  });
  const allowed = needle.length <= 3 ? 1 : needle.length <= 6 ? 2 : Math.floor(needle.length / 3);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of list) {
    const distance = editDistance(needle, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= allowed ? best : affix;
}

export function didYouMean(input: string, candidates: Iterable<string>): string {
  const match = closest(input, candidates);
  return match === undefined ? '' : `; did you mean \`${match}\`?`;
}
