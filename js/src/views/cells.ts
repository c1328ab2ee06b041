/**
 * Small building blocks of the pattern-library tabs (census, compare, training): a grid of DOM cells
 * (layers x heads, layers x steps) with labels, a click per cell and text set through textContent only;
 * a matrix painted on a canvas with any colour map; and a diverging colour map for differences.
 */

import { cssColor, weightColor, weightScale, type RGB } from "../colors";
import { h, prepareCanvas } from "../dom";

export interface Cell {
  background: string;
  title: string;
  text?: string;
  color?: string;
}

export interface CellGridSpec {
  rowLabels: string[];
  colLabels: string[];
  cell(row: number, col: number): Cell;
  /** Called with (row, col) when a cell is clicked. */
  onClick?(row: number, col: number): void;
  /** CSS side of a cell in pixels. */
  size?: number;
}

/** The grid element: a header row of column labels, then one row per label. */
export function cellGrid(spec: CellGridSpec): HTMLElement {
  const grid = h("div", "txm-cells");
  const size = spec.size ?? 18;
  grid.style.display = "grid";
  grid.style.gridTemplateColumns = `max-content repeat(${spec.colLabels.length}, ${size}px)`;
  grid.style.gap = "1px";
  grid.append(h("div", "txm-cells-label"));
  for (const label of spec.colLabels) grid.append(h("div", "txm-cells-label txm-cells-col", label));
  spec.rowLabels.forEach((label, r) => {
    grid.append(h("div", "txm-cells-label", label));
    for (let c = 0; c < spec.colLabels.length; c++) {
      const info = spec.cell(r, c);
      const el = h("div", "txm-cell", info.text ?? "");
      el.dataset.row = String(r);
      el.dataset.col = String(c);
      el.style.background = info.background;
      el.style.height = `${size}px`;
      if (info.color) el.style.color = info.color;
      el.title = info.title;
      grid.append(el);
    }
  });
  if (spec.onClick) {
    grid.addEventListener("click", (e) => {
      const el = (e.target as Element | null)?.closest?.(".txm-cell") as HTMLElement | null;
      if (el?.dataset.row !== undefined) spec.onClick?.(Number(el.dataset.row), Number(el.dataset.col));
    });
  }
  return grid;
}

/** Outline cell (row, col) of a grid (-1: none). */
export function markCell(grid: HTMLElement, row: number, col: number): void {
  for (const el of Array.from(grid.querySelectorAll(".txm-cell.txm-sel"))) el.classList.remove("txm-sel");
  grid.querySelector(`.txm-cell[data-row="${row}"][data-col="${col}"]`)?.classList.add("txm-sel");
}

/** Diverging colours for a difference in -1..1 (already divided by the largest |value| shown):
 * blue below 0, white (background) at 0, red above. */
export function divergingColor(t: number, dark = false): RGB {
  const v = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  const base: RGB = dark ? [30, 30, 34] : [255, 255, 255];
  const end: RGB = v < 0 ? (dark ? [92, 170, 255] : [33, 102, 172]) : (dark ? [255, 120, 100] : [178, 24, 43]);
  const a = Math.sqrt(Math.abs(v));
  return base.map((b, i) => Math.round(b + (end[i] - b) * a)) as RGB;
}

/** A weight 0..1 as the views' sequential colour (square-root scale). */
export function weightCss(w: number, dark = false): string {
  return Number.isFinite(w) ? cssColor(weightColor(weightScale(w), dark)) : "transparent";
}

/** Paint a q x k matrix on `canvas`, each cell `cell` CSS pixels, coloured by `color`; records its size. */
export function paintMatrix(canvas: HTMLCanvasElement, m: ArrayLike<number>, q: number, k: number, cell: number,
  color: (v: number) => RGB): void {
  const { ctx } = prepareCanvas(canvas, Math.max(1, k * cell), Math.max(1, q * cell));
  canvas.dataset.shape = `${q}x${k}`;
  if (!ctx) return;
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < k; j++) {
      ctx.fillStyle = cssColor(color(m[i * k + j]));
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
  }
}
