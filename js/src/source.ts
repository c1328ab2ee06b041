/**
 * Where views get attention from. Views only know `AttentionSource`: the widget backs it with
 * eager blocks plus custom-message fetches, a static report with inlined data.
 */

import { decodeBlock, decodeMeta, kindInfo, type LayerBlock, type Meta } from "./wire";

/** One layer of one kind: (head, query, key) float32, row-major. */
export type LayerData = LayerBlock;

export interface AttentionSource {
  readonly meta: Meta;
  /** The layer, fetched if needed; rejects with a readable Error when it cannot be had. */
  getLayer(kind: string, layer: number): Promise<LayerData>;
  /** The layer if it is already here, without fetching. */
  peekLayer(kind: string, layer: number): LayerData | undefined;
}

/** Fetches a layer that was not sent eagerly. */
export type LayerFetcher = (kind: string, layer: number) => Promise<LayerData>;

export function layerKey(kind: string, layer: number): string {
  return `${kind}/${layer}`;
}

/** An AttentionSource over eager blocks plus an optional fetcher; caches and dedupes requests. */
export class LayerStore implements AttentionSource {
  readonly meta: Meta;
  private readonly layers = new Map<string, LayerData>();
  private readonly inFlight = new Map<string, Promise<LayerData>>();
  private readonly fetcher: LayerFetcher | undefined;

  constructor(meta: Meta, eager: Iterable<LayerData> = [], fetch?: LayerFetcher) {
    this.meta = meta;
    this.fetcher = fetch;
    for (const block of eager) this.add(block);
  }

  /** Build from the raw `_meta` / `_layers` wire values (validating both). */
  static fromWire(rawMeta: unknown, rawLayers: unknown, fetch?: LayerFetcher): LayerStore {
    const meta = decodeMeta(rawMeta);
    const blocks = Array.isArray(rawLayers) ? rawLayers.map(decodeBlock) : [];
    return new LayerStore(meta, blocks, fetch);
  }

  /** Add (or replace) a decoded layer after checking it fits the metadata. */
  add(block: LayerData): void {
    this.check(block.kind, block.layer);
    const info = kindInfo(this.meta, block.kind);
    const q = this.meta.sequences[info.queries].text.length;
    const k = this.meta.sequences[info.keys].text.length;
    const [h, bq, bk] = block.shape;
    if (h !== info.heads || bq !== q || bk !== k) {
      throw new Error(
        `tx_magic: ${block.kind} layer ${block.layer} has shape ${h}x${bq}x${bk}, ` +
          `the trace says ${info.heads} heads x ${q} queries x ${k} keys`,
      );
    }
    this.layers.set(layerKey(block.kind, block.layer), block);
  }

  peekLayer(kind: string, layer: number): LayerData | undefined {
    return this.layers.get(layerKey(kind, layer));
  }

  getLayer(kind: string, layer: number): Promise<LayerData> {
    const key = layerKey(kind, layer);
    const have = this.layers.get(key);
    if (have) return Promise.resolve(have);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    try {
      this.check(kind, layer);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.fetcher) {
      return Promise.reject(new Error(`tx_magic: ${kind} layer ${layer} is not in this trace's data`));
    }
    const request = this.fetcher(kind, layer)
      .then((block) => {
        if (block.kind !== kind || block.layer !== layer) {
          throw new Error(`tx_magic: asked for ${kind} layer ${layer}, got ${block.kind} layer ${block.layer}`);
        }
        this.add(block);
        return block;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, request);
    return request;
  }

  /** Number of layers held (for tests and diagnostics). */
  get size(): number {
    return this.layers.size;
  }

  private check(kind: string, layer: number): void {
    const info = kindInfo(this.meta, kind);
    if (!Number.isInteger(layer) || layer < 0 || layer >= info.layers) {
      throw new Error(`tx_magic: ${kind} attention has layers 0..${info.layers - 1}, not ${layer}`);
    }
  }
}
