/**
 * The matrix view's zoom: which window of shown rows / columns it draws, kept per kind, and the
 * window one step in (around a cell or the focused token) or out.
 */

import type { Frame } from "../frame";
import { zoomIn, zoomOut } from "../pooled";
import type { CellWindow } from "../source";
import type { Focus } from "../state";

/** Zooming in stops once both sides of the window are this many cells or fewer (zoomIn's `min`). */
const SMALLEST = 16;

/** The window of a whole Q x K matrix. */
function wholeWindow(Q: number, K: number): CellWindow {
  return { q0: 0, q1: Q, k0: 0, k1: K };
}

/** Whether two windows cover the same cells. */
export function sameWindow(a: CellWindow, b: CellWindow): boolean {
  return a.q0 === b.q0 && a.q1 === b.q1 && a.k0 === b.k0 && a.k1 === b.k1;
}

/** Whether window `w` is as small as zooming in makes it. */
function smallest(w: CellWindow): boolean {
  return w.q1 - w.q0 <= SMALLEST && w.k1 - w.k0 <= SMALLEST;
}

/** The frame's rows and columns: Q queries by K keys. */
function sizeOf(frame: Frame): [Q: number, K: number] {
  return [frame.queries.text.length, frame.keys.text.length];
}

export class MatrixZoom {
  /** The zoomed window, or null for the whole matrix. */
  current: CellWindow | null = null;
  private kind = "";

  /**
   * The window to draw for `frame` of `kind`: the zoom, dropped first when the kind changed or it
   * no longer fits the frame; else the whole matrix.
   */
  windowFor(kind: string, frame: Frame): CellWindow {
    const [Q, K] = sizeOf(frame);
    if (kind !== this.kind || (this.current && (this.current.q1 > Q || this.current.k1 > K))) this.current = null;
    this.kind = kind;
    return this.current ?? wholeWindow(Q, K);
  }

  /** The window one step out (null: the whole matrix). */
  outward(frame: Frame): CellWindow | null {
    return this.current ? zoomOut(this.current, ...sizeOf(frame)) : null;
  }

  /** The window one step in around shown cell (`row`, `col`) of window `w`; null once `w` is as small as it gets. */
  inwardAt(frame: Frame, w: CellWindow, row: number, col: number): CellWindow | null {
    if (smallest(w)) return null;
    return zoomIn(w, w.q0 + row, w.k0 + col, ...sizeOf(frame));
  }

  /**
   * The window one step in around the focused token (a token of a self kind centres both axes),
   * else around the window's centre; null once the window is as small as it gets.
   */
  inwardAround(frame: Frame, focus: Focus): CellWindow | null {
    const [Q, K] = sizeOf(frame);
    const w = this.current ?? wholeWindow(Q, K);
    if (smallest(w)) return null;
    const row = focus.index >= 0 && focus.side === "query" ? frame.crop.rowOf[focus.index] ?? -1 : -1;
    const col = focus.index >= 0 && focus.side === "key" ? frame.crop.colOf[focus.index] ?? -1 : -1;
    const same = frame.info.queries === frame.info.keys;
    const q = row >= 0 ? row : col >= 0 && same ? col : (w.q0 + w.q1) / 2;
    const k = col >= 0 ? col : row >= 0 && same ? row : (w.k0 + w.k1) / 2;
    return zoomIn(w, q, k, Q, K);
  }
}
