/**
 * Data derived from every layer of a kind, shared by the views that need it (overview grid,
 * layer evolution, statistics, rollout): the layers themselves (fetched once, in parallel),
 * per-head statistics and labels, and rollouts per head selection. All cached.
 */

import { rollout } from "./aggregate";
import type { FrameCache } from "./frame";
import type { AttentionSource, LayerData } from "./source";
import { isSelfKind } from "./state";
import { layerStats, STAT_NAMES, type HeadStats, type HeadType } from "./stats";
import { kindInfo } from "./wire";

const ROLLOUTS_KEPT = 4;

export class Derived {
  private readonly loading = new Map<string, Promise<LayerData[]>>();
  private readonly statsByKind = new Map<string, HeadStats[]>();
  private readonly rollouts = new Map<string, Float32Array[]>();

  constructor(private readonly source: AttentionSource, private readonly frames: FrameCache) {}

  /** Every layer of `kind` when all are here, else null (nothing is fetched). */
  layers(kind: string): LayerData[] | null {
    const info = kindInfo(this.source.meta, kind);
    const out: LayerData[] = [];
    for (let l = 0; l < info.layers; l++) {
      const layer = this.source.peekLayer(kind, l);
      if (!layer) return null;
      out.push(layer);
    }
    return out;
  }

  /** How many of the kind's layers are here, of how many. */
  progress(kind: string): [have: number, total: number] {
    const info = kindInfo(this.source.meta, kind);
    let have = 0;
    for (let l = 0; l < info.layers; l++) if (this.source.peekLayer(kind, l)) have++;
    return [have, info.layers];
  }

  /** Every layer of `kind`, fetching the missing ones once; a failed load may be retried. */
  loadLayers(kind: string): Promise<LayerData[]> {
    const have = this.layers(kind);
    if (have) return Promise.resolve(have);
    let pending = this.loading.get(kind);
    if (!pending && kindInfo(this.source.meta, kind).streamed) {
      return Promise.reject(new Error(`tx_magic: every ${kind} layer at full resolution is not available: this long input was captured reduced`));
    }
    if (!pending) {
      const info = kindInfo(this.source.meta, kind);
      pending = Promise.all(Array.from({ length: info.layers }, (_, l) => this.source.getLayer(kind, l)));
      pending.catch(() => this.loading.delete(kind));
      this.loading.set(kind, pending);
    }
    return pending;
  }

  /** "raw" or "value": what the source weighs `kind` by now (a value-weighting source says; weighted.ts). */
  private variant(kind: string): string {
    return (this.source as { variant?: (kind: string) => string }).variant?.(kind) ?? "raw";
  }

  /** Statistics and label of every (layer, head) of `kind`, layer-major; null until all layers are here. */
  stats(kind: string): HeadStats[] | null {
    const cacheKey = `${kind}|${this.variant(kind)}`;
    const cached = this.statsByKind.get(cacheKey);
    if (cached) return cached;
    const sent = this.sentStats(kind);
    if (sent) {
      this.statsByKind.set(cacheKey, sent);
      return sent;
    }
    const layers = this.layers(kind);
    if (!layers) return null;
    const meta = this.source.meta;
    const info = kindInfo(meta, kind);
    const same = isSelfKind(info);
    const ctx = { sameSequence: same, mask: this.frames.mask(info), ids: same ? meta.sequences[info.queries].ids : null };
    const all = layers.flatMap((layer) => layerStats(layer, ctx));
    this.statsByKind.set(cacheKey, all);
    return all;
  }

  /** Statistics Python sent for a streamed kind (its weights are not here to compute them from), or null. */
  private sentStats(kind: string): HeadStats[] | null {
    const info = kindInfo(this.source.meta, kind);
    if (!info.stats) return null;
    const out: HeadStats[] = [];
    for (let l = 0; l < info.layers; l++) {
      for (let head = 0; head < info.heads; head++) {
        const at = l * info.heads + head;
        const row = { layer: l, head, type: (info.head_types?.[l]?.[head] ?? "") as HeadType } as HeadStats;
        for (const name of STAT_NAMES) row[name] = info.stats[name]?.[at] ?? NaN;
        out.push(row);
      }
    }
    return out;
  }

  /** Rollout of `heads` through each layer of self-attention `kind`; null until all layers are here. */
  rollout(kind: string, heads: readonly number[]): Float32Array[] | null {
    const key = `${kind}|${this.variant(kind)}|${heads.join(",")}`;
    const hit = this.rollouts.get(key);
    if (hit) {
      this.rollouts.delete(key);
      this.rollouts.set(key, hit);
      return hit;
    }
    const layers = this.layers(kind);
    if (!layers) return null;
    const result = rollout(layers, heads);
    this.rollouts.set(key, result);
    while (this.rollouts.size > ROLLOUTS_KEPT) this.rollouts.delete(this.rollouts.keys().next().value as string);
    return result;
  }
}
