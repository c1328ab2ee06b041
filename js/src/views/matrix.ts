/**
 * Matrix view: the heat map of one head (or the mean of the selected heads) of the selected
 * layer, queries as rows, keys as columns. The heat map is drawn once per (layer, heads, size,
 * theme) into a base canvas in one ImageData pass; hover and focus only redraw a transparent
 * overlay canvas on top, so pointer moves stay cheap at n = 512.
 */

import { cachedWeightRamp, cssColor, LEGEND_TICKS, maskColors, weightColor, weightScale } from "../colors";
import { clear, h, prepareCanvas } from "../dom";
import {
  cellAt, displayToken, formatWeight, labelTicks, matrixGeometry, truncateLabel, type MatrixGeometry,
} from "../layout";
import type { LayerData } from "../source";
import { focusOf, type Selection } from "../state";
import { decodeMask, kindInfo, kindTokens, type KindInfo, type SequenceInfo } from "../wire";
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

/** Start and size of cell `i`'s band, widened to 4 px for tiny cells so outlines stay visible. */
function band(i: number, cell: number): [number, number] {
  const size = Math.max(cell, 4);
  return [i * cell - (size - cell) / 2, size];
}

function packRGBA(r: number, g: number, b: number, a = 255): number {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
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
  private info: KindInfo | null = null;
  private mask: Uint8Array | null = null;
  private matrix: Float32Array | null = null;
  private geom: MatrixGeometry | null = null;
  private baseKey = "";
  private baseLayer: LayerData | null = null;
  private labelsKey = "";
  private legendDark: boolean | null = null;
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
    const header = h("div", "txm-view-header");
    this.title = h("span", "txm-view-title", "Matrix");
    header.append(this.title, h("span", "txm-hint", "rows: queries, columns: keys"));

    this.grid = h("div", "txm-matrix-grid");
    const corner = h("div", "txm-matrix-corner");
    this.xLabels = h("div", "txm-matrix-xlabels");
    this.yLabels = h("div", "txm-matrix-ylabels");
    this.xFocus = h("div", "txm-axis-label txm-axis-focus txm-axis-col");
    this.yFocus = h("div", "txm-axis-label txm-axis-focus txm-axis-row");
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
    const guarded = (e: Event) => {
      try {
        fn(e);
      } catch (err) {
        this.ctx.report(err);
      }
    };
    target.addEventListener(type, guarded);
    this.cleanups.push(() => target.removeEventListener(type, guarded));
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
    this.ctx.store.set({ hover: cell.query, hoverSide: "query" });
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
    if (!cell) return;
    const s = this.ctx.store.get();
    if (s.pinned === cell.query && s.pinnedSide === "query") this.ctx.store.set({ pinned: -1 });
    else this.ctx.store.set({ pinned: cell.query, pinnedSide: "query" });
  }

  private showTooltip(cell: { query: number; key: number }, e: MouseEvent): void {
    const s = this.state, info = this.info, matrix = this.matrix;
    if (!s || !info || !matrix) return;
    const host = this.element.getBoundingClientRect();
    const { queries, keys } = kindTokens(this.ctx.source.meta, info);
    const K = keys.text.length;
    const idx = cell.query * K + cell.key;
    const masked = this.mask ? !this.mask[idx] : false;
    clear(this.tooltip);
    const line = h("div", "txm-tooltip-main");
    line.append(
      h("span", "txm-tooltip-token", displayToken(queries.text[cell.query] ?? "")),
      h("span", "txm-tooltip-arrow", " → "),
      h("span", "txm-tooltip-token", displayToken(keys.text[cell.key] ?? "")),
      h("span", "", ": "),
      h("span", "txm-tooltip-value", masked ? "masked" : formatWeight(matrix[idx])),
    );
    const what = s.head >= 0 ? `head ${s.head}` : `mean of ${s.heads.length} head${s.heads.length === 1 ? "" : "s"}`;
    const sub = h("div", "txm-tooltip-sub", `query ${cell.query} → key ${cell.key} · layer ${s.layer} · ${what}`);
    this.tooltip.append(line, sub);
    this.tooltip.hidden = false;
    let x = e.clientX - host.left + 14;
    const y = e.clientY - host.top + 14;
    const tw = this.tooltip.offsetWidth || 200;
    if (host.width > 0 && x + tw > host.width) x = Math.max(0, e.clientX - host.left - tw - 10);
    this.tooltip.style.left = `${x}px`;
    this.tooltip.style.top = `${y}px`;
  }

  update(state: Readonly<Selection>, layer: LayerData, changes: Changes): void {
    this.state = state;
    if (focusOnly(changes) && this.drawn && this.baseLayer === layer) {
      this.drawOverlay(); // a hover: the heat map, labels and sizes are as they were
      return;
    }
    const meta = this.ctx.source.meta;
    const info = kindInfo(meta, state.kind);
    if (info !== this.info) {
      this.info = info;
      this.mask = decodeMask(info, layer.shape[1], layer.shape[2]);
    }
    const [, Q, K] = layer.shape;
    const { queries, keys } = kindTokens(meta, info);
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

    this.matrix = this.ctx.matrices.get(layer, state.heads, state.head);
    const dpr = typeof window !== "undefined" ? window.devicePixelRatio || 1 : 1;
    const dark = this.ctx.theme.dark;
    const baseKey = [state.kind, layer.layer, state.head, state.head >= 0 ? "" : state.heads.join(","), geom.cell, dpr, dark].join("|");
    if (baseKey !== this.baseKey || this.baseLayer !== layer) {
      this.drawBase(this.matrix, geom, dark);
      this.baseKey = baseKey;
      this.baseLayer = layer;
      this.title.textContent = this.describe(state);
      this.base.setAttribute("aria-label", `attention matrix, ${this.describe(state)}`);
    }
    const labelsKey = `${state.kind}|${geom.cell}|${rowLabelW}|${colLabelH}`;
    if (labelsKey !== this.labelsKey) {
      this.buildLabels(queries, keys, geom, rowLabelW, colLabelH);
      this.labelsKey = labelsKey;
    }
    if (this.legendDark !== dark) this.buildLegend(dark);
    this.drawOverlay();
    this.element.dataset.drawnLayer = String(layer.layer);
    this.element.dataset.drawnHead = String(state.head);
    this.element.dataset.drawnKind = state.kind;
    this.drawn = true;
  }

  private describe(s: Readonly<Selection>): string {
    if (s.head >= 0) return `layer ${s.layer} · head ${s.head}`;
    const n = s.heads.length;
    const info = this.info;
    if (n === 0) return `layer ${s.layer} · no heads selected`;
    if (info && n === info.heads) return `layer ${s.layer} · mean of all ${n} heads`;
    return `layer ${s.layer} · mean of heads ${s.heads.length <= 6 ? s.heads.join(", ") : `(${n})`}`;
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
      label.style.top = `${(i + 0.5) * g.cell}px`;
      if (queries.special[i]) label.classList.add("txm-special");
      label.dataset.axisIndex = String(i);
      this.rowTicks.push(label);
      this.yLabels.append(label);
    }
    for (const j of labelTicks(keys.text.length, g.cell, 13)) {
      const label = h("div", "txm-axis-label txm-axis-col", truncateLabel(displayToken(keys.text[j]), LABEL_CHARS));
      label.style.left = `${(j + 0.5) * g.cell}px`;
      if (keys.special[j]) label.classList.add("txm-special");
      label.dataset.axisIndex = String(j);
      this.colTicks.push(label);
      this.xLabels.append(label);
    }
    this.yLabels.append(this.yFocus);
    this.xLabels.append(this.xFocus);
  }

  private buildLegend(dark: boolean): void {
    clear(this.legend);
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
    const [m1, m2] = maskColors(dark);
    const swatch = h("span", "txm-legend-mask");
    swatch.style.background = `repeating-linear-gradient(45deg, ${cssColor(m1)} 0 2px, ${cssColor(m2)} 2px 5px)`;
    this.legend.append(h("span", "", "weight (√ scale)"), scale, swatch, h("span", "", "masked"));
    this.legendDark = dark;
  }

  /** The heat map: one pass over the device pixels of the base canvas. */
  private drawBase(matrix: Float32Array, g: MatrixGeometry, dark: boolean): void {
    const { ctx } = prepareCanvas(this.base, g.width, g.height);
    if (!ctx || typeof ctx.createImageData !== "function") return;
    const pw = this.base.width, ph = this.base.height;
    const Q = g.queries, K = g.keys;
    const img = ctx.createImageData(pw, ph);
    const px = new Uint32Array(img.data.buffer, img.data.byteOffset, pw * ph);
    const ramp = cachedWeightRamp(dark);
    const lut = new Uint32Array(256);
    for (let i = 0; i < 256; i++) lut[i] = packRGBA(ramp[i * 4], ramp[i * 4 + 1], ramp[i * 4 + 2]);
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
    const mask = this.mask;
    const cells = new Uint32Array(Q * K);
    for (let c = 0; c < cells.length; c++) {
      if (mask && !mask[c]) continue;
      cells[c] = lut[(weightScale(matrix[c]) * 255 + 0.5) | 0];
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
    const s = this.state, g = this.geom, info = this.info;
    if (!s || !g || !info) return;
    const focus = focusOf(s);
    const same = info.queries === info.keys;
    const row = focus.index >= 0 && (focus.side === "query" || same) && focus.index < g.queries ? focus.index : -1;
    const col = focus.index >= 0 && (focus.side === "key" || same) && focus.index < g.keys ? focus.index : -1;
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
    const { queries, keys } = kindTokens(this.ctx.source.meta, info);
    this.placeFocusLabel(this.yFocus, row, queries, "top", g);
    this.placeFocusLabel(this.xFocus, col, keys, "left", g);
    this.element.dataset.focusRow = String(row);
    this.element.dataset.focusCol = String(col);
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
