/**
 * Next-token sampling math, recomputed in the browser from full-vocabulary logits (as
 * Transformer Explainer does): temperature, then top-k, then top-p (nucleus), renormalised;
 * the order transformers' logits warpers apply them. A seeded generator makes draws repeatable.
 */

export interface SamplingSettings {
  /** Logits are divided by it; <= 0 means greedy (all mass on the top token). */
  temperature: number;
  /** Keep only the k most likely tokens; 0 = no limit. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = no limit. */
  topP: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingSettings> = { temperature: 1, topK: 0, topP: 1 };

/** The tokens that can be drawn, most likely first, with probabilities summing to 1. */
export interface Distribution {
  ids: Int32Array;
  probs: Float64Array;
}

/** Token ids sorted by logit, largest first (ties: smaller id first). Independent of temperature. */
export function rankByLogit(logits: Float32Array): Int32Array {
  const order = new Int32Array(logits.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  const key = (i: number) => (Number.isNaN(logits[i]) ? -Infinity : logits[i]);
  order.sort((a, b) => key(b) - key(a) || a - b);
  return order;
}

/**
 * The distribution `settings` leave of `logits`: softmax(logits / temperature), cut to top-k,
 * then to top-p, renormalised. `ranked` is rankByLogit(logits) (pass it in to reuse it).
 */
export function nextTokenDistribution(logits: Float32Array, settings: SamplingSettings,
  ranked: Int32Array = rankByLogit(logits)): Distribution {
  const n = ranked.length;
  if (n === 0) return { ids: new Int32Array(0), probs: new Float64Array(0) };
  const t = settings.temperature;
  if (!(t > 0)) return { ids: Int32Array.of(ranked[0]), probs: Float64Array.of(1) };
  const k = settings.topK > 0 ? Math.min(n, Math.floor(settings.topK)) : n;
  const top = logits[ranked[0]];
  const weights = new Float64Array(k);
  let sum = 0;
  for (let i = 0; i < k; i++) {
    const v = logits[ranked[i]];
    const w = Number.isFinite(v) ? Math.exp((v - top) / t) : 0;
    weights[i] = w;
    sum += w;
  }
  let keep = k;
  const p = settings.topP;
  if (p < 1) {
    let mass = 0;
    keep = 0;
    // Keep token i while the tokens before it hold less than p: the smallest set reaching p.
    while (keep < k && (keep === 0 || mass < p)) {
      mass += weights[keep] / sum;
      keep++;
    }
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += weights[i];
  const probs = new Float64Array(keep);
  for (let i = 0; i < keep; i++) probs[i] = weights[i] / kept;
  return { ids: ranked.slice(0, keep), probs };
}

/** Draw a token from `dist` with `u` uniform in [0, 1). */
export function drawToken(dist: Distribution, u: number): number {
  let acc = 0;
  for (let i = 0; i < dist.ids.length; i++) {
    acc += dist.probs[i];
    if (u < acc) return dist.ids[i];
  }
  return dist.ids[dist.ids.length - 1];
}

/** A seeded uniform generator in [0, 1) (mulberry32): the same seed gives the same draws. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Softmax of all logits (temperature 1): each token's probability before any cut. */
export function softmax(logits: Float32Array): Float64Array {
  let top = -Infinity;
  for (const v of logits) if (v > top) top = v;
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = Number.isFinite(logits[i]) ? Math.exp(logits[i] - top) : 0;
    out[i] = w;
    sum += w;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}
