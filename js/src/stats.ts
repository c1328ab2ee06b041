/**
 * Per-head attention statistics and conservative head-type labels: exactly the definitions and
 * thresholds of tx_magic/analysis/stats.py and head_types.py (authoritative; read their
 * docstrings). A test compares these numbers with Python's on a fixture Python writes.
 *
 * Statistics are means over query rows: entropy (nats, -sum p log(p + 1e-10)), max_weight,
 * dispersion (1 - max_weight), distance (sum p |q - k|), first (weight on key 0, rows q >= 1),
 * previous (weight on key q - 1, rows q >= 1), self (weight on key q). Rows with no weight do
 * not count; distance, previous and self need queries and keys from one sequence (else NaN).
 */

import type { LayerData } from "./source";

export const STAT_NAMES = ["entropy", "max_weight", "dispersion", "distance", "first", "previous", "self"] as const;
export type StatName = (typeof STAT_NAMES)[number];

/** Labels in priority order: a head gets the first that applies, or none (""). */
export const LABELS = ["induction", "previous", "first", "self", "local", "broad"] as const;
export type HeadType = (typeof LABELS)[number] | "";

export const ENTROPY_EPS = 1e-10;
/** previous / self: mean weight on that key at least this. */
export const DOMINANT = 0.6;
/** first (a sink): mean weight on token 0 at least this (most causal LMs lean on token 0 a lot). */
export const SINK = 0.9;
/** Inputs with fewer query tokens get no labels: a window or token 0 is most of every row then. */
export const MIN_TOKENS = 8;
/** induction: mean weight on the token after the earlier occurrence at least this. */
export const INDUCTION = 0.4;
/** induction needs this many repeated positions. */
export const MIN_REPEATS = 4;
/** local: mean weight within LOCAL_WINDOW positions at least this. */
export const LOCAL = 0.8;
export const LOCAL_WINDOW = 2;
/** broad: entropy at least this share of the uniform entropy over the allowed keys. */
export const BROAD = 0.9;

const THRESHOLDS: Record<Exclude<HeadType, "">, number> = {
  induction: INDUCTION, previous: DOMINANT, first: SINK, self: DOMINANT, local: LOCAL, broad: BROAD,
};

/** One head's statistics and label. */
export type HeadStats = { layer: number; head: number; type: HeadType } & Record<StatName, number>;

const finite = (x: number) => (Number.isFinite(x) ? x : 0);

/** Statistics of one head's Q x K matrix (NaN/inf weights count as 0). */
export function matrixStats(m: ArrayLike<number>, q: number, k: number, sameSequence: boolean): Record<StatName, number> {
  const same = sameSequence && q === k;
  let live = 0, later = 0;
  let entropy = 0, maxWeight = 0, distance = 0, self = 0, first = 0, previous = 0;
  for (let i = 0; i < q; i++) {
    const base = i * k;
    let sum = 0, ent = 0, max = -Infinity, dist = 0;
    for (let j = 0; j < k; j++) {
      const p = finite(m[base + j]);
      sum += p;
      ent -= p * Math.log(p + ENTROPY_EPS);
      if (p > max) max = p;
      dist += p * Math.abs(i - j);
    }
    if (!(sum > 0)) continue;
    live++;
    entropy += ent;
    maxWeight += max;
    if (same) {
      distance += dist;
      self += finite(m[base + i]);
    }
    if (i >= 1) {
      later++;
      first += finite(m[base]);
      if (same) previous += finite(m[base + i - 1]);
    }
  }
  const mean = (total: number, count: number) => (count > 0 ? total / count : NaN);
  const max = mean(maxWeight, live);
  return {
    entropy: mean(entropy, live),
    max_weight: max,
    dispersion: 1 - max,
    distance: same ? mean(distance, live) : NaN,
    first: q > 1 ? mean(first, later) : NaN,
    previous: same && q > 1 ? mean(previous, later) : NaN,
    self: same ? mean(self, live) : NaN,
  };
}

/** Entropy / log(allowed keys), averaged over rows with at least two allowed keys. */
export function normalizedEntropy(m: ArrayLike<number>, q: number, k: number, mask: Uint8Array | null): number {
  let total = 0, rows = 0;
  for (let i = 0; i < q; i++) {
    let allowed = k;
    if (mask) {
      allowed = 0;
      for (let j = 0; j < k; j++) allowed += mask[i * k + j] ? 1 : 0;
    }
    if (allowed < 2) continue;
    let ent = 0;
    for (let j = 0; j < k; j++) {
      const p = finite(m[i * k + j]);
      if (p > 0) ent -= p * Math.log(p);
    }
    total += ent / Math.log(allowed);
    rows++;
  }
  return rows > 0 ? total / rows : NaN;
}

/** Weight within LOCAL_WINDOW positions of the query, averaged over all rows. */
export function localShare(m: ArrayLike<number>, n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = Math.max(0, i - LOCAL_WINDOW); j <= Math.min(n - 1, i + LOCAL_WINDOW); j++) total += finite(m[i * n + j]);
  }
  return total / n;
}

/** (query, key) pairs where the key follows the query token's latest earlier occurrence. */
export function inductionTargets(ids: readonly number[]): [number, number][] {
  const last = new Map<number, number>();
  const pairs: [number, number][] = [];
  ids.forEach((tok, i) => {
    const before = last.get(tok);
    if (before !== undefined && before + 1 < i) pairs.push([i, before + 1]);
    last.set(tok, i);
  });
  return pairs;
}

/** Mean weight on the induction targets; NaN with fewer than MIN_REPEATS of them. */
export function inductionScore(m: ArrayLike<number>, n: number, pairs: readonly [number, number][]): number {
  if (pairs.length < MIN_REPEATS) return NaN;
  let total = 0;
  for (const [i, j] of pairs) total += finite(m[i * n + j]);
  return total / pairs.length;
}

/** The label of one head from its scores (NaN scores never apply). */
export function labelOf(scores: Partial<Record<Exclude<HeadType, "">, number>>): HeadType {
  for (const label of LABELS) {
    const score = scores[label];
    if (score !== undefined && score >= THRESHOLDS[label]) return label;
  }
  return "";
}

export interface KindContext {
  /** Queries and keys are the same tokens (self, encoder, decoder attention). */
  sameSequence: boolean;
  /** The kind's mask, 1 = allowed; null for none. */
  mask: Uint8Array | null;
  /** Query token ids when sameSequence (for induction), else null. */
  ids: readonly number[] | null;
}

/** Statistics and label of every head of one layer. */
export function layerStats(layer: LayerData, ctx: KindContext): HeadStats[] {
  const [h, q, k] = layer.shape;
  const same = ctx.sameSequence && q === k;
  const pairs = same && ctx.ids ? inductionTargets(ctx.ids.slice(0, q)) : null;
  const out: HeadStats[] = [];
  for (let head = 0; head < h; head++) {
    const m = layer.data.subarray(head * q * k, (head + 1) * q * k);
    const stats = matrixStats(m, q, k, ctx.sameSequence);
    let type: HeadType = "";
    if (q >= MIN_TOKENS) {
      type = labelOf({
        previous: stats.previous, first: stats.first, self: stats.self,
        broad: normalizedEntropy(m, q, k, ctx.mask),
        ...(same ? { local: localShare(m, q) } : {}),
        ...(pairs ? { induction: inductionScore(m, q, pairs) } : {}),
      });
    }
    out.push({ layer: layer.layer, head, ...stats, type });
  }
  return out;
}
