/**
 * Value weighting (Kobayashi et al. 2020, "Attention is Not Only a Weight"): each weight a_ij times the
 * norm n_j = ||f_h(x_j)|| of what head h moves from key j, each row normalised to sum to 1, so rows
 * compare with the raw weights: w_ij = a_ij n_j / Z_i with Z_i = sum_j a_ij n_j.
 *
 * `ValueWeights` holds each kind's norms and row totals (asked of Python once, REQUEST_VALUE_NORMS, or
 * inlined in a report); `weighBlock` applies them to any block at full resolution (a whole layer, an exact
 * window, a row: the totals come from Python, so a window needs no other cell of its rows).
 * `WeightedSource` (weighted.ts) hands the views weighted blocks when the selection says "value".
 */

import { getOrMake } from "./cache";
import type { LayerData } from "./source";
import type { KindInfo, Thumbnails, ValueNorms } from "./wire";

/** Asks Python for a kind's value norms. */
export type ValueNormsFetcher = (kind: string) => Promise<ValueNorms>;

/** The value-weighted cells of a full-resolution block (pool 1): a_ij n_j / Z_i, 0 where Z_i is 0. */
export function weighBlock(block: LayerData, v: ValueNorms): LayerData {
  if ((block.pool ?? 1) !== 1) {
    throw new Error("tx_magic: a pooled overview cannot be value-weighted (each cell is a max over a tile)");
  }
  const [h, rows, cols] = block.shape;
  const q0 = block.q0 ?? 0, k0 = block.k0 ?? 0, l = block.layer;
  const data = new Float32Array(h * rows * cols);
  for (let x = 0; x < h; x++) {
    const norms = v.norms.subarray((l * v.heads + x) * v.keys + k0, (l * v.heads + x) * v.keys + k0 + cols);
    const totals = v.totals.subarray((l * v.heads + x) * v.queries + q0, (l * v.heads + x) * v.queries + q0 + rows);
    for (let r = 0; r < rows; r++) {
      const z = totals[r];
      if (!(z > 0)) continue;
      const base = (x * rows + r) * cols;
      for (let c = 0; c < cols; c++) data[base + c] = (block.data[base + c] * norms[c]) / z;
    }
  }
  return { ...block, data };
}

/** Each kind's value norms, fetched once (or given), and the weighted blocks made from them (cached per block). */
export class ValueWeights {
  private readonly have = new Map<string, ValueNorms>();
  private readonly pending = new Map<string, Promise<ValueNorms>>();
  private readonly failed = new Map<string, Error>();
  private readonly weighted = new WeakMap<LayerData, LayerData>();

  constructor(private readonly fetch?: ValueNormsFetcher, given: Iterable<ValueNorms> = []) {
    for (const v of given) this.have.set(v.kind, v);
  }

  /** Whether norms can be had at all (a kernel to ask, or some given). */
  get available(): boolean {
    return Boolean(this.fetch) || this.have.size > 0;
  }

  peek(kind: string): ValueNorms | undefined {
    return this.have.get(kind);
  }

  /** Why the last load of `kind` failed, or undefined. */
  error(kind: string): Error | undefined {
    return this.failed.get(kind);
  }

  /** The kind's norms, fetched the first time (concurrent asks share one request; a failure may be retried). */
  load(kind: string): Promise<ValueNorms> {
    const have = this.have.get(kind);
    if (have) return Promise.resolve(have);
    const waiting = this.pending.get(kind);
    if (waiting) return waiting;
    if (!this.fetch) return Promise.reject(new Error(`tx_magic: the value norms of ${kind} attention are not in this page`));
    this.failed.delete(kind);
    const request = this.fetch(kind).then(
      (v) => {
        if (v.kind !== kind) throw new Error(`tx_magic: asked for the ${kind} value norms, got ${v.kind}'s`);
        this.have.set(kind, v);
        return v;
      },
    ).catch((err: unknown) => {
      this.failed.set(kind, err instanceof Error ? err : new Error(String(err)));
      throw err;
    }).finally(() => this.pending.delete(kind));
    this.pending.set(kind, request);
    return request;
  }

  /** `block` value-weighted (cached with the block), or undefined while the kind's norms are not here. */
  weigh(block: LayerData): LayerData | undefined {
    const v = this.have.get(block.kind);
    if (!v) return undefined;
    return getOrMake(this.weighted, block, () => weighBlock(block, v));
  }

  /** The value-weighted rows' thumbnails of a kind, shaped as `KindInfo.thumbnails` (undefined until loaded). */
  thumbnails(info: KindInfo): Thumbnails | undefined {
    const v = this.have.get(info.name);
    return v ? { size: v.thumbnailSize, data: v.thumbnails } : undefined;
  }
}
