/**
 * Matrix view: the heat map of one head (or the mean or rollout of the selected heads) of the
 * selected layer, queries as rows, keys as columns, cropped to the pair filter; or the mask
 * itself (allowed vs masked). The heat map is drawn once per (matrix, size, theme) into a base
 * canvas in one ImageData pass; hover and focus only redraw a transparent overlay canvas on
 * top, so pointer moves stay cheap at n = 512.
 */

import { cssColor, LEGEND_TICKS, maskColors, weightColor, weightScale } from "../colors";
import { clear, h, listenGuarded, prepareCanvas } from "../dom";
import type { Frame } from "../frame";
import {
  cellAt, displayToken, formatWeight, labelTicks, matrixGeometry, truncateLabel, type MatrixGeometry,
} from "../layout";
import { describeShown, matrixFor } from "../shown";
import { focusOf, type Selection } from "../state";
import { packRGBA, palette } from "../thumbnails";
import type { SequenceInfo } from "../wire";
import { focusOnly, type Changes, type View, type ViewContext } from "./view";

export interface MatrixOptions {
  /** Largest side of the heat map in CSS pixels. */
  maxSize?: number;
  /** Largest cell side in CSS pixels (short sequences). */
  maxCell?: number;
}

const LABEL_CHARS = 14;
const CHAR_PX = 7;
const FOCUS_COLOR: [number, number, number] = [242, 142, 43];
/** Where allowed cells sit on the weight ramp when the mask is shown. */
const ALLOWED_SCALE = 0.62;

/** Start and size of cell `i`'s band, widened to 4 px for tiny cells so outlines stay visible. */
function band(i: number, cell: number): [number, number] {
  const size = Math.max(cell, 4);
  return [i * cell - (size - cell) / 2, size];
}

export class MatrixView implements View {
  readonly element: HTMLElement;
  drawn = false;

  private readonly title: HTMLElement;
  private readonly grid: HTMLElement;
  private readonly xLabels: HTMLElement;
  private readonly yLabels: HTMLElement;
  private readonly plot: HTMLElement;
  private readonly base: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly tooltip: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly xFocus: HTMLElement;
  private readonly yFocus: HTMLElement;
  private readonly maxSize: number;
  private readonly maxCell: number;

  private state: Readonly<Selection> | null = null;
  private frame: Frame | null = null;
  private matrix: Float32Array | null = null;
  private geom: MatrixGeometry | null = null;
  private baseKey = "";
  private baseMatrix: Float32Array | null = null;
  private labelsKey = "";
  private legendKey = "";
  private hoverCell: { query: number; key: number } | null = null;
  private width = 0;
  private rowTicks: HTMLElement[] = [];
  private colTicks: HTMLElement[] = [];
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext, opts: MatrixOptions = {}) {
    this.maxSize = opts.maxSize ?? 560;
    this.maxCell = opts.maxCell ?? 28;

    this.element = h("div", "txm-view txm-matrix");
    this.element.dataset.view = "matrix";
    this.element.dataset.focusRow = "-1";
    this.element.dataset.mode = "weights";
    const header = h("div", "txm-view-header");
    this.title = h("span", "txm-view-title", "Matrix");
    header.append(this.title, h("span", "txm-hint", "rows: queries, columns: keys"));

    this.grid = h("div", "txm-matrix-grid");
    const corner = h("div", "txm-matrix-corner");
    this.xLabels = h("div", "txm-matrix-xlabels");
    this.yLabels = h("div", "txm-matrix-ylabels");
    this.xFocus = h("div", "txm-axis-label txm-axis-focus txm-axis-col");
    this.yFocus = h("div", "txm-axis-label txm-axis-focus txm-axis-row");
    this.xFocus.dir = this.yFocus.dir = "auto";
    this.plot = h("div", "txm-matrix-plot");
    this.base = h("canvas", "txm-matrix-base");
    this.overlay = h("canvas", "txm-matrix-overlay");
    this.base.setAttribute("role", "img");
    this.plot.append(this.base, this.overlay);
    this.grid.append(corner, this.xLabels, this.yLabels, this.plot);
    this.tooltip = h("div", "txm-tooltip");
    this.tooltip.hidden = true;
    this.legend = h("div", "txm-legend");
    this.element.append(header, this.grid, this.legend, this.tooltip);

    // Pointer events where the browser has them; the compatibility mouse events that follow
    // each pointer event are then ignored (mouse events alone still work, e.g. in tests).
    let pointer = false;
    this.listen(this.overlay, "pointermove", (e) => {
      pointer = true;
      this.onMove(e as MouseEvent);
    });
    this.listen(this.overlay, "mousemove", (e) => pointer || this.onMove(e as MouseEvent));
    this.listen(this.overlay, "pointerleave", () => {
      pointer = true;
      this.onLeave();
    });
    this.listen(this.overlay, "mouseleave", () => pointer || this.onLeave());
    this.listen(this.overlay, "click", (e) => this.onClick(e as MouseEvent));
  }

  private listen(target: EventTarget, type: string, fn: (e: Event) => void): void {
    this.cleanups.push(listenGuarded(target, type, fn, (err) => this.ctx.report(err)));
  }

  private cellFromEvent(e: MouseEvent): { query: number; key: number } | null {
    if (!this.geom) return null;
    const rect = this.overlay.getBoundingClientRect();
    return cellAt(e.clientX - rect.left, e.clientY - rect.top, this.geom);
  }

  private onMove(e: MouseEvent): void {
    const cell = this.cellFromEvent(e);
    this.hoverCell = cell;
    if (!cell) {
      this.onLeave();
      return;
    }
    this.showTooltip(cell, e);
    const before = this.ctx.store.get();
    this.ctx.store.set({ hover: this.frame!.crop.rows[cell.query], hoverSide: "query" });
    // Same row, other column: the store did not change, so redraw the cell outline here.
    if (before === this.ctx.store.get()) this.drawOverlay();
  }

  private onLeave(): void {
    this.hoverCell = null;
    this.tooltip.hidden = true;
    const before = this.ctx.store.get();
    this.ctx.store.set({ hover: -1 });
    if (before === this.ctx.store.get()) this.drawOverlay();
  }

  private onClick(e: MouseEvent): void {
    const cell = this.cellFromEvent(e);
    if (!cell || !this.frame) return;
    const query = this.frame.crop.rows[cell.query];
    const s = this.ctx.store.get();
    if (s.pinned === query && s.pinnedSide === "query") this.ctx.store.set({ pinned: -1 });
    else this.ctx.store.set({ pinned: query, pinnedSide: "query" });
  }

  private showTooltip(cell: { query: number; key: number }, e: MouseEvent): void {
    const s = this.state, frame = this.frame, matrix = this.matrix;
    if (!s || !frame || !matrix) return;
    const host = this.element.getBoundingClientRect();
    const { queries, keys, crop } = frame;
    const K = keys.text.length;
    const idx = cell.query * K + cell.key;
    const masked = frame.mask ? !frame.mask[idx] : false;
    clear(this.tooltip);
    const line = h("div", "txm-tooltip-main");
    const token = (text: string) => {
      const el = h("span", "txm-tooltip-token", displayToken(text));
      el.dir = "auto";
      return el;
    };
    line.append(
      token(queries.text[cell.query] ?? ""),
      h("span", "txm-tooltip-arrow", " → "),
      token(keys.text[cell.key] ?? ""),
      h("span", "", ": "),
      h("span", "txm-tooltip-value", masked ? "masked" : s.showMask ? "allowed" : formatWeight(matrix[idx])),
    );
    const what = s.head >= 0 ? `head ${s.head}` : `${s.aggregate} of ${s.heads.length} head${s.heads.length === 1 ? "" : "s"}`;
    const sub = h("div", "txm-tooltip-sub", `query ${crop.rows[cell.query]} → key ${crop.cols[cell.key]} · layer ${s.layer} · ${what}`);
    this.tooltip.append(line, sub);
    this.tooltip.hidden = false;
    let x = e.clientX - host.left + 14;
    const y = e.clientY - host.top + 14;
    const tw = this.tooltip.offsetWidth || 200;
    if (host.width > 0 && x + tw > host.width) x = Math.max(0, e.clientX - host.left - tw - 10);
    this.tooltip.style.left = `${x}px`;
    this.tooltip.style.top = `${y}px`;
  }

  update(state: Readonly<Selection>, frame: Frame, changes: Changes): void {
    this.state = state;
    if (focusOnly(changes) && this.drawn && this.frame === frame) {
      this.drawOverlay(); // a hover: the heat map, labels and sizes are as they were
      return;
    }
    this.frame = frame;
    const [, Q, K] = frame.layer.shape;
    const { queries, keys } = frame;
    const rowLabelW = this.labelExtent(queries);
    const colLabelH = this.labelExtent(keys);
    if (typeof changes === "string" || this.width === 0) this.width = this.element.clientWidth || 460;
    const width = this.width;
    const available = Math.min(this.maxSize, width - rowLabelW - 12);
    const geom = matrixGeometry(Q, K, available, this.maxCell);
    this.geom = geom;
    this.grid.style.gridTemplateColumns = `${rowLabelW}px ${geom.width}px`;
    this.grid.style.gridTemplateRows = `${colLabelH}px ${geom.height}px`;
    this.plot.style.width = `${geom.width}px`;
    this.plot.style.height = `${geom.height}px`;

    const matrix = matrixFor(this.ctx, state, frame);
    if (!matrix) return; // a rollout still loading: the explorer shows the status
    this.matrix = matrix;
    const dpr = typeof window !== "undefined" ? window.devicePixelRatio || 1 : 1;
    const dark = this.ctx.theme.dark;
    const baseKey = [geom.cell, dpr, dark, state.showMask, state.pair].join("|");
    if (baseKey !== this.baseKey || this.baseMatrix !== matrix) {
      this.drawBase(matrix, frame.mask, geom, dark, state.showMask);
      this.baseKey = baseKey;
      this.baseMatrix = matrix;
      const pair = state.pair === "all" ? "" : ` · ${state.pair[0]}→${state.pair[1]}`;
      const what = (state.showMask ? `${frame.info.mask === "none" ? "no" : frame.info.mask} mask` : describeShown(this.ctx.source.meta, state)) + pair;
      this.title.textContent = what;
      this.base.setAttribute("aria-label", `attention matrix, ${what}`);
    }
    const labelsKey = `${state.kind}|${state.pair}|${geom.cell}|${rowLabelW}|${colLabelH}`;
    if (labelsKey !== this.labelsKey) {
      this.buildLabels(queries, keys, geom, rowLabelW, colLabelH);
      this.labelsKey = labelsKey;
    }
    if (this.legendKey !== `${dark}|${state.showMask}`) this.buildLegend(dark, state.showMask);
    this.drawOverlay();
    this.element.dataset.drawnLayer = String(frame.layer.layer);
    this.element.dataset.drawnHead = String(state.head);
    this.element.dataset.drawnKind = state.kind;
    this.element.dataset.drawnAggregate = state.head >= 0 ? "head" : state.aggregate;
    this.element.dataset.mode = state.showMask ? "mask" : "weights";
    this.element.dataset.shape = `${Q}x${K}`;
    this.drawn = true;
  }

  /** Room for an axis's labels: long enough for its longest (truncated) token. */
  private labelExtent(seq: SequenceInfo): number {
    let longest = 1;
    for (const t of seq.text) longest = Math.max(longest, Math.min(LABEL_CHARS, Array.from(displayToken(t)).length));
    return Math.max(36, Math.min(LABEL_CHARS * CHAR_PX + 12, longest * CHAR_PX + 12));
  }

  private buildLabels(queries: SequenceInfo, keys: SequenceInfo, g: MatrixGeometry, rowW: number, colH: number): void {
    clear(this.xLabels);
    clear(this.yLabels);
    this.rowTicks = [];
    this.colTicks = [];
    this.xLabels.style.height = `${colH}px`;
    this.yLabels.style.width = `${rowW}px`;
    this.yLabels.style.height = `${g.height}px`;
    this.xLabels.style.width = `${g.width}px`;
    for (const i of labelTicks(queries.text.length, g.cell, 13)) {
      const label = h("div", "txm-axis-label txm-axis-row", truncateLabel(displayToken(queries.text[i]), LABEL_CHARS));
      label.dir = "auto";
      label.style.top = `${(i + 0.5) * g.cell}px`;
      if (queries.special[i]) label.classList.add("txm-special");
      label.dataset.axisIndex = String(i);
      this.rowTicks.push(label);
      this.yLabels.append(label);
    }
    for (const j of labelTicks(keys.text.length, g.cell, 13)) {
      const label = h("div", "txm-axis-label txm-axis-col", truncateLabel(displayToken(keys.text[j]), LABEL_CHARS));
      label.dir = "auto";
      label.style.left = `${(j + 0.5) * g.cell}px`;
      if (keys.special[j]) label.classList.add("txm-special");
      label.dataset.axisIndex = String(j);
      this.colTicks.push(label);
      this.xLabels.append(label);
    }
    this.yLabels.append(this.yFocus);
    this.xLabels.append(this.xFocus);
  }

  private buildLegend(dark: boolean, showMask: boolean): void {
    clear(this.legend);
    this.legendKey = `${dark}|${showMask}`;
    const [m1, m2] = maskColors(dark);
    const swatch = h("span", "txm-legend-mask");
    swatch.style.background = `repeating-linear-gradient(45deg, ${cssColor(m1)} 0 2px, ${cssColor(m2)} 2px 5px)`;
    if (showMask) {
      const allowed = h("span", "txm-legend-mask txm-legend-allowed");
      allowed.style.background = cssColor(weightColor(ALLOWED_SCALE, dark));
      this.legend.append(allowed, h("span", "", "allowed"), swatch, h("span", "", "masked"));
      return;
    }
    const stops: string[] = [];
    for (let i = 0; i <= 10; i++) stops.push(`${cssColor(weightColor(i / 10, dark))} ${i * 10}%`);
    const scale = h("span", "txm-legend-scale");
    const bar = h("span", "txm-legend-bar");
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    scale.append(bar);
    for (const t of LEGEND_TICKS) {
      const tick = h("span", "txm-legend-tick", String(t));
      tick.style.left = `${weightScale(t) * 100}%`;
      scale.append(tick);
    }
    this.legend.append(h("span", "", "weight (√ scale)"), scale, swatch, h("span", "", "masked"));
  }

  /** The heat map (or the mask when `showMask`): one pass over the device pixels of the base canvas. */
  private drawBase(matrix: Float32Array, mask: Uint8Array | null, g: MatrixGeometry, dark: boolean, showMask: boolean): void {
    const { ctx } = prepareCanvas(this.base, g.width, g.height);
    if (!ctx || typeof ctx.createImageData !== "function") return;
    const pw = this.base.width, ph = this.base.height;
    const Q = g.queries, K = g.keys;
    const img = ctx.createImageData(pw, ph);
    const px = new Uint32Array(img.data.buffer, img.data.byteOffset, pw * ph);
    const lut = palette(dark).ramp;
    const allowed = lut[Math.round(ALLOWED_SCALE * 255)];
    const [m1, m2] = maskColors(dark);
    const hatchA = packRGBA(...m1), hatchB = packRGBA(...m2);
    // Device pixel -> cell index; -1 on the 1 px gutter between cells when cells are large.
    const axis = (pixels: number, cells: number) => {
      const out = new Int32Array(pixels);
      const gutter = pixels / Math.max(1, cells) >= 10;
      for (let p = 0; p < pixels; p++) {
        const c = Math.min(cells - 1, Math.floor((p * cells) / pixels));
        out[p] = gutter && Math.floor(((p + 1) * cells) / pixels) !== c && p !== pixels - 1 ? -1 : c;
      }
      return out;
    };
    const colKey = axis(pw, K), rowQuery = axis(ph, Q);
    // Colour per cell first (0 marks a masked cell: hatched per pixel below).
    const cells = new Uint32Array(Q * K);
    for (let c = 0; c < cells.length; c++) {
      if (mask && !mask[c]) continue;
      cells[c] = showMask ? allowed : lut[(weightScale(matrix[c]) * 255 + 0.5) | 0];
    }
    for (let y = 0; y < ph; y++) {
      const q = rowQuery[y];
      const rowStart = y * pw;
      if (q < 0) {
        px.fill(0, rowStart, rowStart + pw);
        continue;
      }
      const cellRow = q * K;
      for (let x = 0; x < pw; x++) {
        const k = colKey[x];
        if (k < 0) {
          px[rowStart + x] = 0;
          continue;
        }
        const color = cells[cellRow + k];
        px[rowStart + x] = color !== 0 ? color : (x + y) % 6 < 2 ? hatchA : hatchB;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  /** Focus row/column, hovered cell, axis focus labels. Cheap: runs on every hover. */
  private drawOverlay(): void {
    const s = this.state, g = this.geom, frame = this.frame;
    if (!s || !g || !frame) return;
    const focus = focusOf(s);
    const same = frame.info.queries === frame.info.keys;
    const shownAt = (map: Int32Array) => (focus.index >= 0 ? map[focus.index] ?? -1 : -1);
    const row = focus.side === "query" || same ? shownAt(frame.crop.rowOf) : -1;
    const col = focus.side === "key" || same ? shownAt(frame.crop.colOf) : -1;
    const { ctx } = prepareCanvas(this.overlay, g.width, g.height);
    if (ctx) {
      ctx.clearRect(0, 0, g.width, g.height);
      const accent = cssColor(FOCUS_COLOR);
      ctx.lineWidth = 2;
      if (row >= 0) {
        // Outline only: the focused row's own colours stay readable.
        ctx.strokeStyle = accent;
        const [y, hgt] = band(row, g.cell);
        ctx.strokeRect(1, y + 1, g.width - 2, hgt - 2);
      }
      if (col >= 0) {
        ctx.setLineDash([3, 2]);
        ctx.strokeStyle = accent;
        const [x, wid] = band(col, g.cell);
        ctx.strokeRect(x + 1, 1, wid - 2, g.height - 2);
        ctx.setLineDash([]);
      }
      const hc = this.hoverCell;
      if (hc && hc.query < g.queries && hc.key < g.keys) {
        ctx.lineWidth = 2;
        ctx.strokeStyle = this.ctx.theme.dark ? "#ffffff" : "#000000";
        const size = Math.max(g.cell, 4);
        const off = (size - g.cell) / 2;
        ctx.strokeRect(hc.key * g.cell - off, hc.query * g.cell - off, size, size);
      }
    }
    this.placeFocusLabel(this.yFocus, row, frame.queries, "top", g);
    this.placeFocusLabel(this.xFocus, col, frame.keys, "left", g);
    this.element.dataset.focusRow = String(row >= 0 ? frame.crop.rows[row] : -1);
    this.element.dataset.focusCol = String(col >= 0 ? frame.crop.cols[col] : -1);
  }

  private placeFocusLabel(label: HTMLElement, index: number, seq: SequenceInfo, prop: "top" | "left", g: MatrixGeometry): void {
    // Hide the tick labels the focused label would overlap.
    for (const tick of prop === "top" ? this.rowTicks : this.colTicks) {
      const near = index >= 0 && Math.abs(Number(tick.dataset.axisIndex) - index) * g.cell < 13;
      if (tick.hidden !== near) tick.hidden = near;
    }
    if (index < 0) {
      label.hidden = true;
      return;
    }
    label.hidden = false;
    label.textContent = truncateLabel(displayToken(seq.text[index] ?? ""), LABEL_CHARS);
    label.style[prop] = `${(index + 0.5) * g.cell}px`;
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
