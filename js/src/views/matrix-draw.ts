/**
 * Painting the matrix view's two canvases: the heat map (or the mask) into the base canvas in one
 * pass over its device pixels, with masked cells hatched; and the overlay on top (the focused
 * row / column and the hovered cell), cheap enough to repaint on every pointer move.
 */

import { cssColor, maskColors, weightScale } from "../colors";
import { prepareCanvas } from "../dom";
import type { MatrixGeometry } from "../layout";
import { packRGBA, palette } from "../thumbnails";
import type { DrawnCells } from "./matrix-cells";

/** Where allowed cells sit on the weight ramp when the mask is shown. */
export const ALLOWED_SCALE = 0.62;
const FOCUS_COLOR: [number, number, number] = [242, 142, 43];

/** Start and size of cell `i`'s band, widened to 4 px for tiny cells so outlines stay visible. */
function band(i: number, cell: number): [number, number] {
  const size = Math.max(cell, 4);
  return [i * cell - (size - cell) / 2, size];
}

/**
 * Device pixel -> shown cell -> entry of the drawn matrix (a tile when pooled, via `map`); -1 on
 * the 1 px gutter between cells when cells are large.
 */
function pixelCells(pixels: number, cells: number, map: Int32Array | null): Int32Array {
  const out = new Int32Array(pixels);
  const gutter = pixels / Math.max(1, cells) >= 10;
  for (let p = 0; p < pixels; p++) {
    const c = Math.min(cells - 1, Math.floor((p * cells) / pixels));
    out[p] = gutter && Math.floor(((p + 1) * cells) / pixels) !== c && p !== pixels - 1 ? -1 : map ? map[c] : c;
  }
  return out;
}

/** The heat map of `d` (or the mask when `showMask`) at geometry `g`, into `canvas`. */
export function paintHeatmap(canvas: HTMLCanvasElement, d: DrawnCells, g: MatrixGeometry, dark: boolean, showMask: boolean): void {
  const { ctx } = prepareCanvas(canvas, g.width, g.height);
  if (!ctx || typeof ctx.createImageData !== "function") return;
  const pw = canvas.width, ph = canvas.height;
  const img = ctx.createImageData(pw, ph);
  const px = new Uint32Array(img.data.buffer, img.data.byteOffset, pw * ph);
  const lut = palette(dark).ramp;
  const allowed = lut[Math.round(ALLOWED_SCALE * 255)];
  const [m1, m2] = maskColors(dark);
  const hatchA = packRGBA(...m1), hatchB = packRGBA(...m2);
  const colKey = pixelCells(pw, g.keys, d.colMap), rowQuery = pixelCells(ph, g.queries, d.rowMap);
  const { matrix, mask } = d;
  const width = d.cols;
  // Each device pixel shows one entry: colour only the entries pixels show (a 1024 x 1024 layer in a
  // 460 px canvas: a fifth of them), each once per pixel row.
  for (let y = 0; y < ph; y++) {
    const q = rowQuery[y];
    const rowStart = y * pw;
    if (q < 0) {
      px.fill(0, rowStart, rowStart + pw);
      continue;
    }
    const cellRow = q * width;
    let lastKey = -2, lastColor = 0;
    for (let x = 0; x < pw; x++) {
      const k = colKey[x];
      if (k < 0) {
        px[rowStart + x] = 0;
        continue;
      }
      if (k !== lastKey) {
        const c = cellRow + k;
        lastKey = k;
        lastColor = mask && !mask[c] ? 0 : showMask ? allowed : lut[(weightScale(matrix[c]) * 255 + 0.5) | 0];
      }
      // 0 marks a masked entry: hatched per pixel.
      px[rowStart + x] = lastColor !== 0 ? lastColor : (x + y) % 6 < 2 ? hatchA : hatchB;
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** What the overlay marks, in shown rows / columns of the window (-1 / null: nothing). */
export interface OverlayMarks {
  row: number;
  col: number;
  hover: { query: number; key: number } | null;
}

/** The overlay: the focused row outlined, the focused column dashed, the hovered cell boxed. */
export function paintOverlay(canvas: HTMLCanvasElement, g: MatrixGeometry, marks: OverlayMarks, dark: boolean): void {
  const { ctx } = prepareCanvas(canvas, g.width, g.height);
  if (!ctx) return;
  ctx.clearRect(0, 0, g.width, g.height);
  const accent = cssColor(FOCUS_COLOR);
  ctx.lineWidth = 2;
  if (marks.row >= 0) {
    // Outline only: the focused row's own colours stay readable.
    ctx.strokeStyle = accent;
    const [y, hgt] = band(marks.row, g.cell);
    ctx.strokeRect(1, y + 1, g.width - 2, hgt - 2);
  }
  if (marks.col >= 0) {
    ctx.setLineDash([3, 2]);
    ctx.strokeStyle = accent;
    const [x, wid] = band(marks.col, g.cell);
    ctx.strokeRect(x + 1, 1, wid - 2, g.height - 2);
    ctx.setLineDash([]);
  }
  const hc = marks.hover;
  if (hc && hc.query < g.queries && hc.key < g.keys) {
    ctx.strokeStyle = dark ? "#ffffff" : "#000000";
    const [x, size] = band(hc.key, g.cell);
    const [y] = band(hc.query, g.cell);
    ctx.strokeRect(x, y, size, size);
  }
}
