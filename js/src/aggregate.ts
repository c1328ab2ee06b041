/** Reductions over a layer's heads. Pure functions over (head, query, key) float32 data. */

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
  const acc = new Float64Array(size);
  for (const head of use) {
    const base = head * size;
    const d = layer.data;
    for (let i = 0; i < size; i++) acc[i] += d[base + i];
  }
  const inv = 1 / use.length;
  for (let i = 0; i < size; i++) out[i] = acc[i] * inv;
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
