/**
 * What to fetch, given the link (link.ts): the shown layer now, and its neighbours speculatively.
 *
 * A shown layer with nothing here comes first as an overview of about a megabyte, drawn at once.
 * Fast link (measured >= FAST_LINK_BITS): then the shown layer at full resolution, then layer +- 1
 * (whole) in the background, so that switching hits the cache. Slow or unmeasured: the overview stays; the full
 * layer comes only when a view asks for it (zoomed windows come exact: getBlock), and speculation is
 * the neighbours' overviews, never more than SPECULATIVE_BYTES queued; before any reply was measured,
 * none. Speculation runs one fetch at a
 * time and only while nothing the user asked for waits; a new selection drops what is still queued.
 */

import type { LinkMeter } from "./link";
import type { AttentionSource } from "./source";
import { kindInfo, lowerCells, MASK_CAUSAL } from "./wire";

/** Bytes of speculative fetches a slow (or unmeasured) link may have queued. */
export const SPECULATIVE_BYTES = 2 * 1024 * 1024;
/** A whole layer this small is fetched at full resolution whatever the link (an overview would save little). */
export const SMALL_LAYER_BYTES = 1024 * 1024;

/** One fetch of a whole layer: full resolution (pool 1) or an overview at `pool`. */
export interface Want {
  kind: string;
  layer: number;
  pool: number;
  bytes: number;
}

/**
 * Bytes of a uint8 layer of `heads` x `q` x `k` at `pool`: the values plus a float32 scale per row;
 * `lower`: a causal layer's LAYOUT_LOWER, row r holding its first r + 1 values (tx_magic/wire/blocks.py).
 */
export function layerBytes(heads: number, q: number, k: number, pool = 1, lower = false): number {
  const rows = Math.ceil(q / pool), cols = Math.ceil(k / pool);
  return heads * (lower ? lowerCells(rows) : rows * cols) + heads * rows * 4;
}

interface Dims {
  heads: number;
  q: number;
  k: number;
  streamed: boolean;
  base: number;
  layers: number;
  /** Whole layers cross in LAYOUT_LOWER (a causal, square kind). */
  lower: boolean;
}

function dims(source: AttentionSource, kind: string): Dims {
  const info = kindInfo(source.meta, kind);
  const q = source.meta.sequences[info.queries].text.length, k = source.meta.sequences[info.keys].text.length;
  return {
    heads: info.heads, q, k, streamed: Boolean(info.streamed), base: info.pool ?? 1, layers: info.layers,
    lower: info.mask === MASK_CAUSAL && q === k,
  };
}

function bytesAt(d: Dims, pool: number): number {
  return layerBytes(d.heads, d.q, d.k, pool, d.lower);
}

/** The pool of an overview that a slow link gets in about a second: the finest (>= 2, >= the kind's) within SMALL_LAYER_BYTES. */
export function overviewPool(source: AttentionSource, kind: string): number {
  const d = dims(source, kind);
  let pool = Math.max(2, d.base);
  while (bytesAt(d, pool) > SMALL_LAYER_BYTES && pool < Math.max(d.q, d.k)) pool *= 2;
  return pool;
}

/**
 * What the shown layer needs fetched now (null: nothing; what is here can be drawn). A layer with
 * nothing here comes first as an overview of about SMALL_LAYER_BYTES, drawn at once (a 12.6 MB
 * full layer takes about a second to arrive and decode even on loopback), then, on a fast link,
 * at full resolution. `direct`: skip the overview (speculation: nobody waits for the draw).
 */
export function wantNow(source: AttentionSource, kind: string, layer: number, fast: boolean, direct = false): Want | null {
  const d = dims(source, kind);
  const overview = source.peekOverview(kind, layer);
  if (d.streamed) {
    // A pooled overview is the finest whole layer there is (zoomed windows come exact).
    if (overview) return null;
    return { kind, layer, pool: Math.max(2, d.base), bytes: bytesAt(d, Math.max(2, d.base)) };
  }
  if (source.peekLayer(kind, layer)) return null;
  const full = bytesAt(d, 1);
  const whole = { kind, layer, pool: 1, bytes: full };
  if (full <= SMALL_LAYER_BYTES || (fast && (overview || direct))) return whole;
  if (overview) return null;
  const pool = overviewPool(source, kind);
  return { kind, layer, pool, bytes: bytesAt(d, pool) };
}

/** Speculative fetches after the shown layer (which `wantNow` asks for): its neighbours, within the cap on a slow link. */
export function speculate(source: AttentionSource, kind: string, layer: number, fast: boolean, inFlight = 0): Want[] {
  const d = dims(source, kind);
  const wants: Want[] = [];
  let queued = inFlight;
  const cap = fast ? Infinity : SPECULATIVE_BYTES;
  for (const at of [layer + 1, layer - 1]) {
    if (at < 0 || at >= d.layers) continue;
    const want = wantNow(source, kind, at, fast, fast);
    if (!want || queued + want.bytes > cap) continue;
    queued += want.bytes;
    wants.push(want);
  }
  return wants;
}

/** Fetches one Want (LayerStore.getLayer or getOverview at its pool). */
export type WantFetcher = (want: Want) => Promise<unknown>;

/** Runs speculation one fetch at a time, while `idle()` (nothing the user asked for waits); `plan` replaces the queue. */
export class Prefetcher {
  private queue: Want[] = [];
  /** The speculative fetch in flight. */
  private current: Want | null = null;
  private stopped = false;
  /** Speculative bytes asked for so far (for tests and the status line). */
  asked = 0;

  constructor(private readonly source: AttentionSource, private readonly meter: LinkMeter,
    private readonly fetch: WantFetcher, private readonly idle: () => boolean = () => true,
    private readonly onFetched: () => void = () => {}) {}

  /** The selection is `kind` / `layer` now: queue its speculation, dropping what was queued for another. */
  plan(kind: string, layer: number): void {
    if (this.stopped || !this.source.live) return;
    if (this.meter.count === 0) { // nothing measured yet: no guesses (the first replies measure the link)
      this.queue = [];
      return;
    }
    const now = this.current;
    this.queue = speculate(this.source, kind, layer, this.meter.fast, now?.bytes ?? 0)
      .filter((w) => !now || w.kind !== now.kind || w.layer !== now.layer || w.pool !== now.pool);
    this.pump();
  }

  /** What is still queued (not yet asked for). */
  get pending(): readonly Want[] {
    return this.queue;
  }

  /** Try the next fetch (after the user's fetch finished, say). */
  pump(): void {
    if (this.current || this.stopped || !this.idle()) return;
    const next = this.queue.shift();
    if (!next) return;
    this.current = next;
    this.asked += next.bytes;
    this.fetch(next).catch(() => {}).finally(() => { // a failed guess costs nothing: the view asks again when it needs it
      this.current = null;
      if (this.stopped) return;
      this.onFetched();
      this.pump();
    });
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }
}
