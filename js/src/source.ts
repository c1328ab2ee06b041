/**
 * Where views get attention from, at the finest level available. Views only know
 * `AttentionSource`: the widget backs it with eager blocks plus requests to Python (rpc.ts), a
 * static report with inlined data.
 *
 * Levels, coarse to fine: a pooled overview of a layer (each value the max over a p x p tile);
 * the whole layer at full resolution, exact (float32) or dequantized (uint8, within
 * `maxError`); exact windows and rows (float32, fetched on demand, cached in a bounded LRU).
 * Streamed kinds (long inputs captured reduced) have no full layers: overviews, windows and
 * each query row's top-k weights only.
 */

import {
  decodeBlock, decodeMeta, decodeTopK, isTopK, kindInfo, MAX_BLOCK_CELLS, type KindInfo, type LayerBlock,
  type Meta, type TopKBlock, type WireLayerRequest,
} from "./wire";

/** One layer of one kind: (head, query, key) float32, row-major (or a pooled / windowed block). */
export type LayerData = LayerBlock;

/** A window of cells: queries q0..q1-1, keys k0..k1-1. */
export interface CellWindow {
  q0: number;
  q1: number;
  k0: number;
  k1: number;
}

/** What a whole-layer request asks for (the dtype and pool of a REQUEST_LAYER). */
export type LayerWant = Required<Pick<WireLayerRequest, "dtype" | "pool">>;

/** Fetches a whole layer (at `want`'s dtype and pool) that was not sent eagerly. */
export type LayerFetcher = (kind: string, layer: number, want?: LayerWant) => Promise<LayerData>;

/** Everything a source can ask the kernel for. */
export interface Fetchers {
  layer?: LayerFetcher;
  /** An exact float32 window, pool 1. */
  block?: (kind: string, layer: number, window: CellWindow) => Promise<LayerData>;
  topk?: (kind: string, layer: number) => Promise<TopKBlock>;
}

export interface AttentionSource {
  readonly meta: Meta;
  /** The layer at full resolution (exact or dequantized), fetched if needed; rejects with a readable Error. */
  getLayer(kind: string, layer: number): Promise<LayerData>;
  /** The full-resolution layer if it is already here, without fetching. */
  peekLayer(kind: string, layer: number): LayerData | undefined;
  /** A pooled overview of the layer if one is here (pool > 1). */
  peekOverview(kind: string, layer: number): LayerData | undefined;
  /** A pooled overview at `pool` or finer (default: the kind's finest whole-layer pool), fetched if needed. */
  getOverview(kind: string, layer: number, pool?: number): Promise<LayerData>;
  /** Exact float32 cells of a window (pool 1), from an exact layer here, the cache, or the kernel. */
  getBlock(kind: string, layer: number, window: CellWindow): Promise<LayerData>;
  /** The exact window if it is here (cached, or cut from an exact layer). */
  peekBlock(kind: string, layer: number, window: CellWindow): LayerData | undefined;
  /** Each query row's top-k weights, fetched if needed. */
  getTopK(kind: string, layer: number): Promise<TopKBlock>;
  peekTopK(kind: string, layer: number): TopKBlock | undefined;
  /** Whether layers can be fetched (a live kernel); a static report has only what it inlined. */
  readonly live: boolean;
  /** Fetches still waiting for the kernel (speculation waits for them: prefetch.ts). */
  readonly fetching?: number;
}

export function layerKey(kind: string, layer: number): string {
  return `${kind}/${layer}`;
}

function windowKey(kind: string, layer: number, w: CellWindow): string {
  return `${kind}/${layer}/${w.q0}:${w.q1}/${w.k0}:${w.k1}`;
}

/** Bytes of exact windows and rows kept (least recently used dropped first). */
export const BLOCK_CACHE_BYTES = 64 * 1024 * 1024;

/** Whether `b` is a whole layer at full resolution for a Q x K kind. */
function isWhole(b: LayerData, q: number, k: number): boolean {
  return (b.pool ?? 1) === 1 && (b.q0 ?? 0) === 0 && (b.k0 ?? 0) === 0 && b.shape[1] === q && b.shape[2] === k;
}

/** The cells of window `w` out of `b` (pool 1, covering `w`), as a block of its own. */
export function sliceBlock(b: LayerData, w: CellWindow): LayerData {
  const [h, r, c] = b.shape;
  const bq = b.q0 ?? 0, bk = b.k0 ?? 0;
  const rows = w.q1 - w.q0, cols = w.k1 - w.k0;
  if (bq === w.q0 && bk === w.k0 && rows === r && cols === c) return b;
  const data = new Float32Array(h * rows * cols);
  for (let x = 0; x < h; x++) {
    for (let i = 0; i < rows; i++) {
      const src = (x * r + (w.q0 - bq + i)) * c + (w.k0 - bk);
      data.set(b.data.subarray(src, src + cols), (x * rows + i) * cols);
    }
  }
  return { kind: b.kind, layer: b.layer, shape: [h, rows, cols], data, pool: 1, q0: w.q0, k0: w.k0, exact: b.exact ?? true };
}

function covers(b: LayerData, w: CellWindow): boolean {
  const bq = b.q0 ?? 0, bk = b.k0 ?? 0;
  return (b.pool ?? 1) === 1 && bq <= w.q0 && bk <= w.k0 && bq + b.shape[1] >= w.q1 && bk + b.shape[2] >= w.k1;
}

/** An AttentionSource over eager blocks plus optional fetchers; caches and dedupes requests. */
export class LayerStore implements AttentionSource {
  readonly meta: Meta;
  private readonly layers = new Map<string, LayerData>();
  private readonly overviews = new Map<string, LayerData>();
  private readonly topks = new Map<string, TopKBlock>();
  /** Exact windows, least recently used first. */
  private readonly blocks = new Map<string, LayerData>();
  private blockBytes = 0;
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly fetchers: Fetchers;

  constructor(meta: Meta, eager: Iterable<LayerData | TopKBlock> = [], fetch?: LayerFetcher | Fetchers,
    private readonly blockBudget = BLOCK_CACHE_BYTES) {
    this.meta = meta;
    this.fetchers = typeof fetch === "function" ? { layer: fetch } : (fetch ?? {});
    for (const block of eager) {
      if ("index" in block) this.addTopK(block);
      else this.add(block);
    }
  }

  get live(): boolean {
    return Boolean(this.fetchers.layer);
  }

  get fetching(): number {
    return this.inFlight.size;
  }

  /** Build from the raw `_meta` / `_layers` wire values (validating both). */
  static fromWire(rawMeta: unknown, rawLayers: unknown, fetch?: LayerFetcher | Fetchers): LayerStore {
    const meta = decodeMeta(rawMeta);
    const blocks = Array.isArray(rawLayers) ? rawLayers.map((b) => (isTopK(b) ? decodeTopK(b) : decodeBlock(b))) : [];
    return new LayerStore(meta, blocks, fetch);
  }

  private dims(kind: string): { info: KindInfo; q: number; k: number } {
    const info = kindInfo(this.meta, kind);
    return { info, q: this.meta.sequences[info.queries].text.length, k: this.meta.sequences[info.keys].text.length };
  }

  /** Add (or replace) a decoded block after checking it fits the metadata: whole layer, overview or window. */
  add(block: LayerData): void {
    this.check(block.kind, block.layer);
    const { info, q, k } = this.dims(block.kind);
    const [h, bq, bk] = block.shape;
    const pool = block.pool ?? 1, q0 = block.q0 ?? 0, k0 = block.k0 ?? 0;
    const fits = h === info.heads && q0 + (bq - 1) * pool < Math.max(q, 1) && k0 + (bk - 1) * pool < Math.max(k, 1)
      && (pool > 1 || (q0 + bq <= q && k0 + bk <= k));
    const whole = pool === 1 ? isWhole(block, q, k) : q0 === 0 && k0 === 0 && bq === Math.ceil(q / pool) && bk === Math.ceil(k / pool);
    if (!fits || (pool > 1 && !whole)) {
      throw new Error(
        `tx_magic: ${block.kind} layer ${block.layer} has shape ${h}x${bq}x${bk} (pool ${pool} at ${q0},${k0}), ` +
          `the trace says ${info.heads} heads x ${q} queries x ${k} keys`,
      );
    }
    const key = layerKey(block.kind, block.layer);
    if (pool > 1) {
      const have = this.overviews.get(key);
      if (!have || (have.pool ?? 1) >= pool) this.overviews.set(key, block);
    } else if (whole) {
      const have = this.layers.get(key);
      // An exact layer is never replaced by a quantized one.
      if (!have || !(have.exact ?? true) || (block.exact ?? true)) this.layers.set(key, block);
    } else {
      this.remember(windowKey(block.kind, block.layer, { q0, q1: q0 + bq, k0, k1: k0 + bk }), block);
    }
  }

  addTopK(block: TopKBlock): void {
    this.check(block.kind, block.layer);
    const { info, q } = this.dims(block.kind);
    if (block.shape[0] !== info.heads || block.shape[1] !== q) {
      throw new Error(`tx_magic: ${block.kind} top-k ${block.layer} has shape ${block.shape.join("x")}, the trace says ${info.heads} heads x ${q} queries`);
    }
    this.topks.set(layerKey(block.kind, block.layer), block);
  }

  peekLayer(kind: string, layer: number): LayerData | undefined {
    return this.layers.get(layerKey(kind, layer));
  }

  peekOverview(kind: string, layer: number): LayerData | undefined {
    return this.overviews.get(layerKey(kind, layer));
  }

  peekTopK(kind: string, layer: number): TopKBlock | undefined {
    return this.topks.get(layerKey(kind, layer));
  }

  getLayer(kind: string, layer: number): Promise<LayerData> {
    const have = this.layers.get(layerKey(kind, layer));
    if (have) return Promise.resolve(have);
    return this.once(kind, layer, "layer", () => {
      const { info } = this.dims(kind);
      if (info.streamed) {
        throw new Error(
          `tx_magic: ${kind} layer ${layer} was captured reduced (a long input): it exists only as a pooled ` +
            "overview, zoomed windows and each token's top weights",
        );
      }
      const fetch = this.need(this.fetchers.layer, `${kind} layer ${layer} is not in this trace's data`);
      return fetch(kind, layer, { dtype: "uint8", pool: 1 }).then((block) => {
        this.expect(block, kind, layer);
        if ((block.pool ?? 1) !== 1) throw new Error(`tx_magic: asked for ${kind} layer ${layer} at full resolution, got pool ${block.pool}`);
        this.add(block);
        return this.layers.get(layerKey(kind, layer)) ?? block;
      });
    });
  }

  getOverview(kind: string, layer: number, pool?: number): Promise<LayerData> {
    const have = this.overviews.get(layerKey(kind, layer));
    if (have && (pool === undefined || (have.pool ?? 1) <= pool)) return Promise.resolve(have);
    return this.once(kind, layer, `overview${pool ?? ""}`, () => {
      const { info } = this.dims(kind);
      const fetch = this.need(this.fetchers.layer, `${kind} layer ${layer} is not in this trace's data`);
      return fetch(kind, layer, { dtype: "uint8", pool: Math.max(2, info.pool ?? 1, pool ?? 1) }).then((block) => {
        this.expect(block, kind, layer);
        this.add(block);
        return (block.pool ?? 1) > 1 ? block : this.layers.get(layerKey(kind, layer)) ?? block;
      });
    });
  }

  peekBlock(kind: string, layer: number, window: CellWindow): LayerData | undefined {
    const w = this.clamp(kind, window);
    const full = this.layers.get(layerKey(kind, layer));
    if (full && (full.exact ?? true)) return sliceBlock(full, w);
    const key = windowKey(kind, layer, w);
    const hit = this.blocks.get(key);
    if (hit) {
      this.blocks.delete(key); // most recently used goes last
      this.blocks.set(key, hit);
      return hit;
    }
    for (const b of this.blocks.values()) {
      if (b.kind === kind && b.layer === layer && covers(b, w)) return sliceBlock(b, w);
    }
    return undefined;
  }

  getBlock(kind: string, layer: number, window: CellWindow): Promise<LayerData> {
    try {
      this.check(kind, layer);
      const have = this.peekBlock(kind, layer, window);
      if (have) return Promise.resolve(have);
      const w = this.clamp(kind, window);
      const cells = (w.q1 - w.q0) * (w.k1 - w.k0);
      if (cells > MAX_BLOCK_CELLS) {
        throw new Error(`tx_magic: a window of ${cells} cells is more than the ${MAX_BLOCK_CELLS} one request may hold: zoom in further`);
      }
      return this.once(kind, layer, `block/${windowKey(kind, layer, w)}`, () => {
        const fetch = this.need(this.fetchers.block, `exact values of ${kind} layer ${layer} are not in this trace's data`);
        return fetch(kind, layer, w).then((block) => {
          this.expect(block, kind, layer);
          const bq = block.q0 ?? 0, bk = block.k0 ?? 0;
          if ((block.pool ?? 1) !== 1 || bq !== w.q0 || bk !== w.k0 || block.shape[1] !== w.q1 - w.q0 || block.shape[2] !== w.k1 - w.k0) {
            throw new Error(`tx_magic: asked for ${kind} layer ${layer} cells ${w.q0}..${w.q1} x ${w.k0}..${w.k1}, got another block`);
          }
          this.add(block);
          return block;
        });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Exact weights of query row `query` for every head: (head, key), fetched if needed. */
  getRow(kind: string, layer: number, query: number): Promise<LayerData> {
    return this.getBlock(kind, layer, { q0: query, q1: query + 1, k0: 0, k1: this.dims(kind).k });
  }

  peekRow(kind: string, layer: number, query: number): LayerData | undefined {
    return this.peekBlock(kind, layer, { q0: query, q1: query + 1, k0: 0, k1: this.dims(kind).k });
  }

  getTopK(kind: string, layer: number): Promise<TopKBlock> {
    const have = this.topks.get(layerKey(kind, layer));
    if (have) return Promise.resolve(have);
    return this.once(kind, layer, "topk", () => {
      const fetch = this.need(this.fetchers.topk, `top weights of ${kind} layer ${layer} are not in this trace's data`);
      return fetch(kind, layer).then((block) => {
        if (block.kind !== kind || block.layer !== layer) {
          throw new Error(`tx_magic: asked for ${kind} top-k ${layer}, got ${block.kind} top-k ${block.layer}`);
        }
        this.addTopK(block);
        return block;
      });
    });
  }

  /** Number of whole layers held (for tests and diagnostics). */
  get size(): number {
    return this.layers.size;
  }

  /** Bytes of exact windows held (bounded by the block budget). */
  get cachedBlockBytes(): number {
    return this.blockBytes;
  }

  private remember(key: string, block: LayerData): void {
    const old = this.blocks.get(key);
    if (old) {
      this.blocks.delete(key);
      this.blockBytes -= old.data.byteLength;
    }
    this.blocks.set(key, block);
    this.blockBytes += block.data.byteLength;
    for (const [k, b] of this.blocks) {
      if (this.blockBytes <= this.blockBudget || k === key) break;
      this.blocks.delete(k);
      this.blockBytes -= b.data.byteLength;
    }
  }

  /** Run `make` once per key while it is pending (concurrent asks share it). */
  private once<T>(kind: string, layer: number, what: string, make: () => Promise<T>): Promise<T> {
    const key = `${what}/${layerKey(kind, layer)}`;
    const pending = this.inFlight.get(key) as Promise<T> | undefined;
    if (pending) return pending;
    let request: Promise<T>;
    try {
      this.check(kind, layer);
      request = make();
    } catch (err) {
      return Promise.reject(err);
    }
    const tracked = request.finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, tracked);
    return tracked;
  }

  private need<T>(fetcher: T | undefined, missing: string): T {
    if (!fetcher) throw new Error(`tx_magic: ${missing}`);
    return fetcher;
  }

  private expect(block: LayerData, kind: string, layer: number): void {
    if (block.kind !== kind || block.layer !== layer) {
      throw new Error(`tx_magic: asked for ${kind} layer ${layer}, got ${block.kind} layer ${block.layer}`);
    }
  }

  private clamp(kind: string, w: CellWindow): CellWindow {
    const { q, k } = this.dims(kind);
    const q0 = Math.max(0, Math.min(q - 1, Math.floor(w.q0))), k0 = Math.max(0, Math.min(k - 1, Math.floor(w.k0)));
    return { q0, q1: Math.max(q0 + 1, Math.min(q, Math.ceil(w.q1))), k0, k1: Math.max(k0 + 1, Math.min(k, Math.ceil(w.k1))) };
  }

  private check(kind: string, layer: number): void {
    const info = kindInfo(this.meta, kind);
    if (!Number.isInteger(layer) || layer < 0 || layer >= info.layers) {
      throw new Error(`tx_magic: ${kind} attention has layers 0..${info.layers - 1}, not ${layer}`);
    }
  }
}
