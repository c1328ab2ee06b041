/**
 * Reductions over a layer's heads (one head, mean of heads) and across layers (rollout).
 * Pure functions over (head, query, key) float32 data.
 */

import type { LayerData } from "./source";

/** One head's Q*K matrix as a view (no copy). */
export function headMatrix(layer: LayerData, head: number): Float32Array {
  const [h, q, k] = layer.shape;
  if (!Number.isInteger(head) || head < 0 || head >= h) {
    throw new RangeError(`tx_magic: head ${head} is not in 0..${h - 1}`);
  }
  return layer.data.subarray(head * q * k, (head + 1) * q * k);
}

/**
 * Mean over the selected heads -> Q*K. Heads outside the layer are ignored; with no heads the
 * result is all zeros. Sums in float64 per cell for accuracy, then stores float32.
 */
export function meanOfHeads(layer: LayerData, heads: readonly number[]): Float32Array {
  const [h, q, k] = layer.shape;
  const size = q * k;
  const use = [...new Set(heads)].filter((x) => Number.isInteger(x) && x >= 0 && x < h);
  const out = new Float32Array(size);
  if (use.length === 0) return out;
  if (use.length === 1) {
    out.set(layer.data.subarray(use[0] * size, (use[0] + 1) * size));
    return out;
  }
  // In chunks that stay in the CPU cache: one pass over each head's data, not over the sum.
  const CHUNK = 4096;
  const acc = new Float64Array(CHUNK);
  const d = layer.data;
  const inv = 1 / use.length;
  for (let start = 0; start < size; start += CHUNK) {
    const n = Math.min(CHUNK, size - start);
    acc.fill(0);
    for (const head of use) {
      const base = head * size + start;
      for (let i = 0; i < n; i++) acc[i] += d[base + i];
    }
    for (let i = 0; i < n; i++) out[start + i] = acc[i] * inv;
  }
  return out;
}

/**
 * The matrix the matrix view shows: head `head` alone when >= 0, else the mean of `heads`.
 */
export function shownMatrix(layer: LayerData, heads: readonly number[], head: number): Float32Array {
  return head >= 0 ? headMatrix(layer, head) : meanOfHeads(layer, heads);
}

/** Small cache of `shownMatrix` results keyed by layer identity and head selection. */
export class MatrixCache {
  private readonly entries = new Map<string, { layer: LayerData; matrix: Float32Array }>();
  constructor(private readonly capacity = 8) {}

  get(layer: LayerData, heads: readonly number[], head: number): Float32Array {
    const key = `${layer.kind}/${layer.layer}/${head}/${head >= 0 ? "" : heads.join(",")}`;
    const hit = this.entries.get(key);
    if (hit && hit.layer === layer) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.matrix;
    }
    const matrix = shownMatrix(layer, heads, head);
    this.entries.set(key, { layer, matrix });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return matrix;
  }
}

/**
 * Attention rollout (Abnar & Zuidema 2020) of self-attention, as tx_magic/analysis/rollout.py:
 * per layer A_hat = rownorm(0.5 * mean of `heads` + 0.5 * I), rollout_l = A_hat_l @ ... @ A_hat_0.
 * Returns one N x N matrix per layer of `layers` (consecutive, from layer 0), in float64 math.
 */
export function rollout(layers: readonly LayerData[], heads: readonly number[]): Float32Array[] {
  const out: Float32Array[] = [];
  let current: Float64Array | null = null;
  for (const layer of layers) {
    const [, q, k] = layer.shape;
    if (q !== k) throw new Error(`tx_magic: rollout needs self-attention, ${layer.kind} is ${q}x${k}`);
    const n = q;
    const mean = meanOfHeads64(layer, heads);
    for (let i = 0; i < n; i++) {
      const row = i * n;
      mean[row + i] = 0.5 * mean[row + i] + 0.5;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        if (j !== i) mean[row + j] *= 0.5;
        sum += mean[row + j];
      }
      for (let j = 0; j < n; j++) mean[row + j] /= sum;
    }
    current = current ? matmul(mean, current, n) : mean;
    out.push(Float32Array.from(current));
  }
  return out;
}

/** Mean over the selected heads in float64, NaN/inf counting as 0 (as Python's nan_to_num). */
function meanOfHeads64(layer: LayerData, heads: readonly number[]): Float64Array {
  const [h, q, k] = layer.shape;
  const size = q * k;
  const use = [...new Set(heads)].filter((x) => Number.isInteger(x) && x >= 0 && x < h);
  const acc = new Float64Array(size);
  for (const head of use) {
    const base = head * size;
    for (let i = 0; i < size; i++) {
      const v = layer.data[base + i];
      if (Number.isFinite(v)) acc[i] += v;
    }
  }
  if (use.length > 0) for (let i = 0; i < size; i++) acc[i] /= use.length;
  return acc;
}

/** a @ b for n x n row-major matrices. */
function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let m = 0; m < n; m++) {
      const x = a[row + m];
      if (x === 0) continue;
      const brow = m * n;
      for (let j = 0; j < n; j++) out[row + j] += x * b[brow + j];
    }
  }
  return out;
}
