/**
 * What the matrix view's base canvas shows for a window of shown rows / columns: the frame's
 * cells (exact or dequantized), an exact window fetched from the kernel (a pooled layer zoomed
 * in far enough), or the pooled tiles; how a shown cell maps onto those values; and the caption
 * that says which of them the picture is.
 */

import { shownMatrix } from "../aggregate";
import type { Frame } from "../frame";
import { formatWeight } from "../layout";
import { subMatrix, tileIndex, tileMask, windowMask } from "../pooled";
import { matrixFor, showsRollout, type ShownContext } from "../shown";
import type { AttentionSource, CellWindow, LayerData } from "../source";
import type { Selection } from "../state";

/** Largest zoom window (cells) drawn from exact values fetched from the kernel (pooled layers). */
export const EXACT_WINDOW_CELLS = 512 * 512;

/** What the base canvas shows: a matrix, and how shown cells map onto its entries. */
export interface DrawnCells {
  matrix: Float32Array;
  /** Width of `matrix`. */
  cols: number;
  /** Shown row / column (within the window) -> row / column of `matrix`; null: the same. */
  rowMap: Int32Array | null;
  colMap: Int32Array | null;
  mask: Uint8Array | null;
  /** Values are quantized or tile maxima, not the exact cell. */
  approx: boolean;
  /** Tokens per tile side of `matrix` (1: one value per cell). */
  pool: number;
}

/** The entry of `d.matrix` (and `d.mask`) behind shown cell (`row`, `col`) of the window. */
export function drawnIndex(d: DrawnCells, row: number, col: number): number {
  return (d.rowMap ? d.rowMap[row] : row) * d.cols + (d.colMap ? d.colMap[col] : col);
}

/** What the caption says about the drawn values (how tiles are pooled, the window, the error). */
export function describeCells(d: DrawnCells, w: CellWindow, zoomed: boolean, frame: Frame): string {
  const Q = frame.queries.text.length, K = frame.keys.text.length;
  const window = zoomed ? `tokens ${w.q0}–${w.q1 - 1} × ${w.k0}–${w.k1 - 1} of ${Q} × ${K} · ` : "";
  if (d.pool > 1) return `${window}each cell: max over ${d.pool} × ${d.pool} tokens · double-click to zoom`;
  const err = frame.layer.maxError;
  const approx = d.approx && err !== undefined ? `values within ±${formatWeight(err)} (hover: exact) · ` : "";
  return `${window}${approx}rows: queries, columns: keys${zoomed ? "" : " · double-click to zoom"}`;
}

/** What choosing cells needs from the view's context. */
export interface CellsContext extends ShownContext {
  source: AttentionSource;
  report(err: unknown): void;
}

/** Picks the values to draw for a window, keeping the per-layer tile masks and the last exact window's matrix. */
export class MatrixCells {
  private readonly tileMasks = new WeakMap<LayerData, Uint8Array | null>();
  private blockMatrix: { block: LayerData; key: string; matrix: Float32Array } | null = null;

  constructor(private readonly ctx: CellsContext) {}

  /**
   * The matrix to draw for window `w` of `frame`, or null while a rollout is loading. When the
   * window is a zoom (`zoomed`) into a pooled layer and small enough, its exact cells are fetched
   * and `arrived(w)` is called once they are here.
   */
  choose(state: Readonly<Selection>, frame: Frame, w: CellWindow, zoomed: boolean, arrived: (asked: CellWindow) => void): DrawnCells | null {
    const pool = frame.pool ?? 1;
    const rows = w.q1 - w.q0, cols = w.k1 - w.k0;
    const K = frame.keys.text.length;
    if (pool === 1) {
      const full = matrixFor(this.ctx, state, frame);
      if (!full) return null;
      const whole = w.q0 === 0 && w.k0 === 0 && rows === frame.queries.text.length && cols === K;
      return {
        matrix: whole ? full : subMatrix(full, K, w), cols: whole ? K : cols, rowMap: null, colMap: null,
        mask: frame.mask && !whole ? subMatrix(frame.mask, K, w) : frame.mask,
        approx: !(frame.layer.exact ?? true), pool: 1,
      };
    }
    if (showsRollout(state)) return null;
    if (zoomed && rows * cols <= EXACT_WINDOW_CELLS) {
      const exact = this.exactWindow(state, frame, w, arrived);
      if (exact) return exact;
    }
    let mask = this.tileMasks.get(frame.layer);
    if (mask === undefined) {
      mask = tileMask(frame.info, frame.queries.text.length, K, pool);
      this.tileMasks.set(frame.layer, mask);
    }
    return {
      matrix: this.ctx.matrices.get(frame.layer, state.heads, state.head), cols: frame.layer.shape[2],
      rowMap: tileIndex(w.q0, rows, pool), colMap: tileIndex(w.k0, cols, pool), mask, approx: true, pool,
    };
  }

  /** The exact cells of window `w` if they are here; else null, and they are fetched. */
  private exactWindow(state: Readonly<Selection>, frame: Frame, w: CellWindow, arrived: (asked: CellWindow) => void): DrawnCells | null {
    const block = this.ctx.source.peekBlock(state.kind, state.layer, w);
    if (block) {
      const key = `${state.head}|${state.heads.join(",")}`;
      if (!this.blockMatrix || this.blockMatrix.block !== block || this.blockMatrix.key !== key) {
        this.blockMatrix = { block, key, matrix: shownMatrix(block, state.heads, state.head) };
      }
      const mask = windowMask(frame.info, frame.keys.text.length, w);
      return { matrix: this.blockMatrix.matrix, cols: w.k1 - w.k0, rowMap: null, colMap: null, mask, approx: false, pool: 1 };
    }
    const asked = { ...w };
    this.ctx.source.getBlock(state.kind, state.layer, w).then(
      () => arrived(asked),
      (err: unknown) => this.ctx.report(err),
    );
    return null;
  }
}
