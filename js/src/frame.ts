/**
 * What the attention pictures draw: a layer cropped to the sentence-pair filter (rows: queries
 * of the chosen text, columns: keys of the chosen text), with its tokens, its mask and the maps
 * between shown rows/columns and token positions. Cropping happens here, client-side: the
 * filter never asks Python for new data.
 */

import { getOrMake } from "./cache";
import type { LayerData } from "./source";
import type { PairFilter } from "./state";
import { decodeMask, kindTokens, type KindInfo, type Meta, type SequenceInfo } from "./wire";

export interface Crop {
  /** Shown row -> query token index. */
  rows: Int32Array;
  /** Shown column -> key token index. */
  cols: Int32Array;
  /** Query token index -> shown row, or -1 when filtered out. */
  rowOf: Int32Array;
  /** Key token index -> shown column, or -1 when filtered out. */
  colOf: Int32Array;
  /** Every token, in order (no filter in effect). */
  identity: boolean;
}

export interface Frame {
  info: KindInfo;
  /** The layer cropped to the filter: (heads, rows, cols); the layer itself when nothing is cut. */
  layer: LayerData;
  queries: SequenceInfo;
  keys: SequenceInfo;
  crop: Crop;
  /** Cropped mask, 1 = allowed; null when everything is allowed (always null for a pooled layer). */
  mask: Uint8Array | null;
  /**
   * Tokens per tile side when `layer` is a pooled overview (each value the max over pool x pool
   * cells; the pair filter is not applied); 1 or absent for a full-resolution layer.
   */
  pool?: number;
}

/** The query and key segments a filter keeps (null: every segment). */
export function pairSegments(pair: PairFilter): [query: number | null, key: number | null] {
  if (pair === "all") return [null, null];
  return [pair[0] === "A" ? 0 : 1, pair[1] === "A" ? 0 : 1];
}

function keep(seq: SequenceInfo, segment: number | null): Int32Array {
  const paired = seq.segment.some((s) => s === 1);
  const out: number[] = [];
  seq.segment.forEach((s, i) => {
    if (segment === null || !paired || s === segment) out.push(i);
  });
  return Int32Array.from(out);
}

function inverse(index: Int32Array, n: number): Int32Array {
  const out = new Int32Array(n).fill(-1);
  index.forEach((t, i) => {
    out[t] = i;
  });
  return out;
}

/** The rows and columns a pair filter shows for a kind (a side with one text is not filtered). */
export function pairCrop(meta: Meta, info: KindInfo, pair: PairFilter): Crop {
  const { queries, keys } = kindTokens(meta, info);
  const [qs, ks] = pairSegments(pair);
  const rows = keep(queries, qs), cols = keep(keys, ks);
  return {
    rows, cols,
    rowOf: inverse(rows, queries.text.length),
    colOf: inverse(cols, keys.text.length),
    identity: rows.length === queries.text.length && cols.length === keys.text.length,
  };
}

/** The cells of a Q x `k` matrix at the crop's rows and columns. */
export function cropMatrix<T extends Float32Array | Uint8Array>(m: T, k: number, crop: Crop): T {
  if (crop.identity) return m;
  const { rows, cols } = crop;
  const out = new (m.constructor as { new (n: number): T })(rows.length * cols.length);
  for (let i = 0; i < rows.length; i++) {
    const src = rows[i] * k, dst = i * cols.length;
    for (let j = 0; j < cols.length; j++) out[dst + j] = m[src + cols[j]];
  }
  return out;
}

function cropSequence(seq: SequenceInfo, index: Int32Array): SequenceInfo {
  const pick = <T>(values: T[]) => Array.from(index, (i) => values[i]);
  return { text: pick(seq.text), special: pick(seq.special), segment: pick(seq.segment), ids: pick(seq.ids) };
}

/** Crops of each layer per filter, and each kind's mask: cached, as views redraw often. */
export class FrameCache {
  private readonly frames = new WeakMap<LayerData, Map<PairFilter, Frame>>();
  private readonly masks = new WeakMap<KindInfo, Uint8Array | null>();

  constructor(private readonly meta: Meta) {}

  /** The kind's full mask (1 = allowed), or null when everything is allowed. */
  mask(info: KindInfo): Uint8Array | null {
    if (!this.masks.has(info)) {
      const { queries, keys } = kindTokens(this.meta, info);
      this.masks.set(info, decodeMask(info, queries.text.length, keys.text.length));
    }
    return this.masks.get(info) ?? null;
  }

  frame(info: KindInfo, layer: LayerData, pair: PairFilter): Frame {
    const byPair = getOrMake(this.frames, layer, () => new Map<PairFilter, Frame>());
    return getOrMake(byPair, pair, () => this.build(info, layer, pair));
  }

  private build(info: KindInfo, layer: LayerData, pair: PairFilter): Frame {
    const { queries, keys } = kindTokens(this.meta, info);
    const pool = layer.pool ?? 1;
    if (pool > 1) return { info, layer, queries, keys, crop: pairCrop(this.meta, info, "all"), mask: null, pool };
    const crop = pairCrop(this.meta, info, pair);
    const mask = this.mask(info);
    if (crop.identity) return { info, layer, queries, keys, crop, mask };
    const [h, q, k] = layer.shape;
    const r = crop.rows.length, c = crop.cols.length;
    const data = new Float32Array(h * r * c);
    for (let x = 0; x < h; x++) data.set(cropMatrix(layer.data.subarray(x * q * k, (x + 1) * q * k), k, crop), x * r * c);
    return {
      info,
      layer: { kind: layer.kind, layer: layer.layer, shape: [h, r, c], data },
      queries: cropSequence(queries, crop.rows),
      keys: cropSequence(keys, crop.cols),
      crop,
      mask: mask ? cropMatrix(mask, k, crop) : null,
    };
  }
}
