/**
 * Math for drawing coarse data at token positions: pooled overviews (each value the max over a
 * pool x pool tile), windows of cells (zoom), the kind's mask over tiles and windows, and the
 * meta thumbnails (tiles split as numpy.array_split does). Pure functions, no DOM.
 */

import type { CellWindow } from "./source";
import type { Pooled } from "./thumbnails";
import { MASK_CAUSAL, MASK_EXPLICIT, type KindInfo, type Thumbnails } from "./wire";

/** Tile index of each of `n` shown cells starting at token `start`, for tiles `pool` tokens wide. */
export function tileIndex(start: number, n: number, pool: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor((start + i) / pool);
  return out;
}

/** Whether query `q` may attend to key `k` under the kind's mask (`keys`: K, for explicit masks). */
function allowed(info: KindInfo, keys: number): (q: number, k: number) => boolean {
  if (info.mask === MASK_CAUSAL) return (q, k) => k <= q;
  if (info.mask === MASK_EXPLICIT && info.mask_data) {
    const m = info.mask_data;
    return (q, k) => m[q * keys + k] !== 0;
  }
  return () => true;
}

/**
 * The mask over the tiles of a pooled layer (1 = some cell of the tile is allowed), or null when
 * everything is allowed. `q`, `k`: tokens; tiles are `pool` tokens wide, the last may be partial.
 */
export function tileMask(info: KindInfo, q: number, k: number, pool: number): Uint8Array | null {
  if (info.mask !== MASK_CAUSAL && info.mask !== MASK_EXPLICIT) return null;
  const rows = Math.ceil(q / pool), cols = Math.ceil(k / pool);
  const out = new Uint8Array(rows * cols);
  if (info.mask === MASK_CAUSAL) {
    // A tile has an allowed cell when its first key is at or before its last query.
    for (let r = 0; r < rows; r++) {
      const lastQuery = Math.min(q, (r + 1) * pool) - 1;
      for (let c = 0; c < cols && c * pool <= lastQuery; c++) out[r * cols + c] = 1;
    }
    return out;
  }
  const ok = allowed(info, k);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < k; j++) if (ok(i, j)) out[Math.floor(i / pool) * cols + Math.floor(j / pool)] = 1;
  }
  return out;
}

/** The mask over a window of token cells (1 = allowed), or null when everything is allowed. */
export function windowMask(info: KindInfo, k: number, w: CellWindow): Uint8Array | null {
  if (info.mask !== MASK_CAUSAL && info.mask !== MASK_EXPLICIT) return null;
  const ok = allowed(info, k);
  const rows = w.q1 - w.q0, cols = w.k1 - w.k0;
  const out = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = ok(w.q0 + i, w.k0 + j) ? 1 : 0;
  return out;
}

/** The cells of window `w` (in the matrix's own rows / columns) out of a row-major matrix `cols` wide. */
export function subMatrix<T extends Float32Array | Uint8Array>(m: T, cols: number, w: CellWindow): T {
  const rows = w.q1 - w.q0, width = w.k1 - w.k0;
  const out = new (m.constructor as { new (n: number): T })(rows * width);
  for (let i = 0; i < rows; i++) out.set(m.subarray((w.q0 + i) * cols + w.k0, (w.q0 + i) * cols + w.k1) as T, i * width);
  return out;
}

/**
 * The window `factor` times smaller than `w` (at least `min` cells a side), centred on cell
 * (`q`, `k`) and kept inside the Q x K matrix.
 */
export function zoomIn(w: CellWindow, q: number, k: number, Q: number, K: number, factor = 4, min = 16): CellWindow {
  const rows = Math.min(Q, Math.max(min, Math.ceil((w.q1 - w.q0) / factor)));
  const cols = Math.min(K, Math.max(min, Math.ceil((w.k1 - w.k0) / factor)));
  const q0 = Math.max(0, Math.min(Q - rows, Math.round(q - rows / 2)));
  const k0 = Math.max(0, Math.min(K - cols, Math.round(k - cols / 2)));
  return { q0, q1: q0 + rows, k0, k1: k0 + cols };
}

/** The window `factor` times larger than `w`, same centre, inside the matrix; null once it is the whole matrix. */
export function zoomOut(w: CellWindow, Q: number, K: number, factor = 4): CellWindow | null {
  const rows = Math.min(Q, (w.q1 - w.q0) * factor), cols = Math.min(K, (w.k1 - w.k0) * factor);
  if (rows >= Q && cols >= K) return null;
  const cq = (w.q0 + w.q1) / 2, ck = (w.k0 + w.k1) / 2;
  const q0 = Math.max(0, Math.min(Q - rows, Math.round(cq - rows / 2)));
  const k0 = Math.max(0, Math.min(K - cols, Math.round(ck - cols / 2)));
  return { q0, q1: q0 + rows, k0, k1: k0 + cols };
}

/** Start of each of `bins` bins over `n` items, as numpy.array_split cuts them (the first n % bins one longer); plus n. */
export function splitStarts(n: number, bins: number): Int32Array {
  const out = new Int32Array(bins + 1);
  const base = Math.floor(n / bins), extra = n % bins;
  for (let b = 0; b <= bins; b++) out[b] = b * base + Math.min(b, extra);
  return out;
}

/**
 * One head's meta thumbnail as a Pooled picture (value / 255; NaN where the whole tile is masked),
 * from the kind's uint8 (layer, head, T, T) thumbnails of a Q x K matrix.
 */
export function thumbnailOf(info: KindInfo, layer: number, head: number, q: number, k: number): Pooled | null {
  return info.thumbnails ? thumbnailFrom(info, info.thumbnails, layer, head, q, k) : null;
}

/** `thumbnailOf` for a kind whose thumbnails `t` are known to be there. */
export function thumbnailFrom(info: KindInfo, t: Thumbnails, layer: number, head: number, q: number, k: number): Pooled {
  const T = t.size, cells = T * T;
  const off = (layer * info.heads + head) * cells;
  const data = new Float32Array(cells);
  for (let i = 0; i < cells; i++) data[i] = t.data[off + i] / 255;
  if (info.mask === MASK_CAUSAL || info.mask === MASK_EXPLICIT) {
    const rows = splitStarts(q, T), cols = splitStarts(k, T);
    const ok = allowed(info, k);
    for (let r = 0; r < T; r++) {
      for (let c = 0; c < T; c++) {
        let any = false;
        if (info.mask === MASK_CAUSAL) any = cols[c] <= rows[r + 1] - 1 && cols[c] < cols[c + 1];
        else for (let i = rows[r]; i < rows[r + 1] && !any; i++) for (let j = cols[c]; j < cols[c + 1] && !any; j++) any = ok(i, j);
        if (!any) data[r * T + c] = NaN;
      }
    }
  }
  return { data, rows: T, cols: T, aspect: q > 0 && k > 0 ? q / k : 1 };
}

/** The value the matrix shows for one row of an exact (head, 1, K) row block: one head, or the mean of `heads`. */
export function shownOfRow(row: Float32Array, heads: readonly number[], head: number, K: number, key: number): number {
  if (head >= 0) return row[head * K + key];
  const use = [...new Set(heads)];
  if (use.length === 0) return 0;
  let sum = 0;
  for (const x of use) sum += row[x * K + key];
  return sum / use.length;
}
