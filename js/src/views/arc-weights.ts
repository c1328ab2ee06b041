/**
 * Which weights the arc view draws for a focused token: per head, the weight between it and each
 * token of the other column, from the dense layer or (a layer here only as a pooled overview)
 * from sparse data; and the mean weights that tint the other column's labels.
 */

import type { LayerData } from "../source";
import type { Side } from "../state";
import type { TopKBlock } from "../wire";

/** Calls `cb(other, weight)` for the weights of one head between the focused token and the others. */
export type Visitor = (head: number, cb: (other: number, weight: number) => void) => void;

/**
 * The cells of a Q x K matrix on focused token `index`'s line: its row (a query) or its column
 * (a key); `count` others, other `o` at cell `cell(o)`. Null when `index` is outside the matrix.
 */
function lineOf(index: number, side: Side, Q: number, K: number): { count: number; cell: (o: number) => number } | null {
  if (side === "query") return index < Q ? { count: K, cell: (o) => index * K + o } : null;
  return index < K ? { count: Q, cell: (o) => o * K + index } : null;
}

/** The arcs of focused token `index` from a full-resolution layer, skipping masked cells; null when it is outside the layer. */
export function denseVisitor(layer: LayerData, mask: Uint8Array | null, index: number, side: Side): Visitor | null {
  const [, Q, K] = layer.shape;
  const line = lineOf(index, side, Q, K);
  if (!line) return null;
  const data = layer.data;
  return (head, cb) => {
    const base = head * Q * K;
    for (let o = 0; o < line.count; o++) {
      const cell = line.cell(o);
      if (mask && !mask[cell]) continue;
      cb(o, data[base + cell]);
    }
  };
}

/**
 * The arcs of a focused token from sparse data, for layers here only as a pooled overview:
 * a query's exact row when fetched (`row`: (head, K)), else its top-k weights; a key's
 * incoming weights among every query's top-k.
 */
export function sparseVisitor(topk: TopKBlock | undefined, row: LayerData | undefined, index: number, side: Side): Visitor | null {
  if (side === "query" && row) {
    const K = row.shape[2];
    return (head, cb) => {
      const base = head * K;
      for (let j = 0; j < K; j++) cb(j, row.data[base + j]);
    };
  }
  if (!topk) return null;
  const [, Q, k] = topk.shape;
  if (side === "query") {
    return (head, cb) => {
      const base = (head * Q + index) * k;
      for (let r = 0; r < k; r++) cb(topk.index[base + r], topk.data[base + r]);
    };
  }
  return (head, cb) => {
    const base = head * Q * k;
    for (let i = 0; i < Q * k; i++) if (topk.index[base + i] === index) cb(Math.floor(i / k), topk.data[base + i]);
  };
}

/** Weakest mean weight that still tints a label. */
const TINT_MIN = 0.02;

/**
 * The tokens of the other column that focused token `index` shares at least TINT_MIN of mean
 * weight `mean` (Q x K) with, unmasked: other index -> weight.
 */
export function tintWeights(mean: Float32Array, Q: number, K: number, mask: Uint8Array | null, index: number, side: Side): Map<number, number> {
  const out = new Map<number, number>();
  const line = lineOf(index, side, Q, K);
  if (!line) return out;
  for (let o = 0; o < line.count; o++) {
    const cell = line.cell(o);
    const w = mean[cell];
    if (w >= TINT_MIN && (!mask || mask[cell])) out.set(o, w);
  }
  return out;
}
