/**
 * The attention views read through: raw weights, or, when the selection's `weighting` is "value" and
 * the kind's value norms are here, every full-resolution block value-weighted (values.ts). One
 * wrapper, so the matrix, the arcs, the head and layer tabs, statistics and rollout all follow the
 * switch without knowing of it.
 *
 * While "value" is selected but the norms are still on their way, the wrapper has no layer to give
 * (the views show "loading…"), never the raw weights under a "value" label. Pooled overviews cannot be
 * weighted (a tile's max of a_ij is not a max of a_ij n_j / Z_i): in "value" mode they are withheld, so
 * the views wait for the full layer, which the explorer fetches.
 */

import type { AttentionSource, CellWindow, LayerData } from "./source";
import type { SelectionStore } from "./state";
import type { ValueWeights } from "./values";
import type { Meta, TopKBlock } from "./wire";

export class WeightedSource implements AttentionSource {
  readonly meta: Meta;

  constructor(private readonly base: AttentionSource, private readonly store: SelectionStore,
    readonly values: ValueWeights) {
    this.meta = base.meta;
  }

  get live(): boolean {
    return this.base.live;
  }

  get fetching(): number {
    return this.base.fetching ?? 0;
  }

  /** "value" when the selection weighs `kind` by value, else "raw" (caches of derived data key on it). */
  variant(kind: string): "raw" | "value" {
    const s = this.store.get();
    return s.weighting === "value" && s.kind === kind ? "value" : "raw";
  }

  private weigh(block: LayerData | undefined): LayerData | undefined {
    if (!block || this.variant(block.kind) === "raw") return block;
    return this.values.weigh(block);
  }

  private weighed(block: LayerData): LayerData {
    const out = this.weigh(block);
    if (!out) throw new Error(`tx_magic: the ${block.kind} value norms are not here yet`);
    return out;
  }

  peekLayer(kind: string, layer: number): LayerData | undefined {
    return this.weigh(this.base.peekLayer(kind, layer));
  }

  getLayer(kind: string, layer: number): Promise<LayerData> {
    const wanted = this.variant(kind);
    return this.base.getLayer(kind, layer).then((b) => (wanted === "value" ? this.values.load(kind).then(() => this.weighed(b)) : b));
  }

  peekOverview(kind: string, layer: number): LayerData | undefined {
    return this.variant(kind) === "value" ? undefined : this.base.peekOverview(kind, layer);
  }

  getOverview(kind: string, layer: number, pool?: number): Promise<LayerData> {
    return this.variant(kind) === "value" ? this.getLayer(kind, layer) : this.base.getOverview(kind, layer, pool);
  }

  peekBlock(kind: string, layer: number, window: CellWindow): LayerData | undefined {
    return this.weigh(this.base.peekBlock(kind, layer, window));
  }

  getBlock(kind: string, layer: number, window: CellWindow): Promise<LayerData> {
    const wanted = this.variant(kind);
    return this.base.getBlock(kind, layer, window)
      .then((b) => (wanted === "value" ? this.values.load(kind).then(() => this.weighed(b)) : b));
  }

  getTopK(kind: string, layer: number): Promise<TopKBlock> {
    return this.base.getTopK(kind, layer);
  }

  peekTopK(kind: string, layer: number): TopKBlock | undefined {
    return this.base.peekTopK(kind, layer);
  }
}
