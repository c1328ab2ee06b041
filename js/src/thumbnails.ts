/**
 * Thumbnails for the small-multiple views. A Q x K matrix is max-pooled to at most size x size
 * cells (max keeps thin patterns such as diagonals visible), then painted into a shared pixel
 * buffer. Painting needs only the pooled Float32Array (NaN = every cell under it is masked),
 * so pooled data made elsewhere (e.g. by Python for long inputs) can be painted the same way.
 */

import { getOrMake } from "./cache";
import { cachedWeightRamp, maskColors, weightScale } from "./colors";

export interface Pooled {
  /** rows x cols, row-major; NaN where every source cell is masked. */
  data: Float32Array;
  rows: number;
  cols: number;
  /** Rows / columns of the matrix it comes from (1 for a square one). */
  aspect: number;
}

/**
 * Max-pool a `q` x `k` matrix of weights (>= 0) to at most `size` x `size`; masked cells do not
 * count, NaN weights count as 0.
 */
export function poolMatrix(m: Float32Array, q: number, k: number, size: number, mask: Uint8Array | null = null): Pooled {
  const rows = Math.max(1, Math.min(q, size)), cols = Math.max(1, Math.min(k, size));
  const data = new Float32Array(rows * cols);
  const seen = mask ? new Uint8Array(rows * cols) : null;
  const colBin = new Int32Array(k);
  for (let j = 0; j < k; j++) colBin[j] = Math.floor((j * cols) / k);
  for (let i = 0; i < q; i++) {
    const out = Math.floor((i * rows) / q) * cols;
    const src = i * k;
    if (seen && mask) {
      for (let j = 0; j < k; j++) {
        if (!mask[src + j]) continue;
        const c = out + colBin[j], v = m[src + j];
        seen[c] = 1;
        if (v > data[c]) data[c] = v;
      }
    } else {
      for (let j = 0; j < k; j++) {
        const c = out + colBin[j], v = m[src + j];
        if (v > data[c]) data[c] = v;
      }
    }
  }
  if (seen) for (let c = 0; c < seen.length; c++) if (!seen[c]) data[c] = NaN;
  if (q === 0 || k === 0) data.fill(NaN);
  return { data, rows, cols, aspect: q > 0 && k > 0 ? q / k : 1 };
}

/** Packed RGBA colours (little-endian ABGR words) for painting into a Uint32Array view of ImageData. */
export interface Palette {
  /** 256 steps of the weight ramp, indexed by round(weightScale(w) * 255). */
  ramp: Uint32Array;
  masked: number;
}

export function packRGBA(r: number, g: number, b: number, a = 255): number {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

const palettes = new Map<boolean, Palette>();

export function palette(dark: boolean): Palette {
  let p = palettes.get(dark);
  if (!p) {
    const lut = cachedWeightRamp(dark);
    const ramp = new Uint32Array(256);
    for (let i = 0; i < 256; i++) ramp[i] = packRGBA(lut[i * 4], lut[i * 4 + 1], lut[i * 4 + 2]);
    p = { ramp, masked: packRGBA(...maskColors(dark)[0]) };
    palettes.set(dark, p);
  }
  return p;
}

/**
 * Paint `pooled` into the `w` x `h` device-pixel box at (x0, y0) of `px`, a canvas-sized
 * Uint32Array `stride` pixels wide (nearest-neighbour scaling).
 */
export function paintPooled(
  px: Uint32Array, stride: number, x0: number, y0: number, w: number, h: number, pooled: Pooled, colors: Palette,
): void {
  const { rows, cols, data } = pooled;
  const ramp = colors.ramp, masked = colors.masked;
  const rowColors = new Uint32Array(w);
  let painted = -1;
  for (let y = 0; y < h; y++) {
    const r = Math.min(rows - 1, Math.floor((y * rows) / h));
    const start = (y0 + y) * stride + x0;
    if (r !== painted) {
      // One row of pixels per pooled row, reused for the device rows it covers.
      const base = r * cols;
      for (let x = 0; x < w; x++) {
        const v = data[base + Math.min(cols - 1, Math.floor((x * cols) / w))];
        rowColors[x] = Number.isNaN(v) ? masked : ramp[(weightScale(v) * 255 + 0.5) | 0];
      }
      painted = r;
    }
    px.set(rowColors, start);
  }
}

const pools = new WeakMap<object, Map<string, Pooled>>();

/** `make()` once per (owner object, id): thumbnails live as long as the data they come from. */
export function cachedPool(owner: object, id: string, make: () => Pooled): Pooled {
  const byId = getOrMake(pools, owner, () => new Map<string, Pooled>());
  return getOrMake(byId, id, make);
}
