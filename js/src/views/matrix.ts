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
import { shownMatrix } from "../aggregate";
import { subMatrix, tileIndex, tileMask, windowMask, zoomIn, zoomOut, shownOfRow } from "../pooled";
import { describeShown, matrixFor, showsRollout } from "../shown";
import type { CellWindow, LayerData } from "../source";
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
/** Largest zoom window (cells) drawn from exact values fetched from the kernel (pooled layers). */
export const EXACT_WINDOW_CELLS = 512 * 512;

/** What the base canvas shows: a matrix, and how shown cells map onto its entries. */
interface Drawn {
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

/** Where allowed cells sit on the weight ramp when the mask is shown. */
const ALLOWED_SCALE = 0.62;

/** Start and size of cell `i`'s band, widened to 4 px for tiny cells so outlines stay visible. */
function band(i: number, cell: number): [number, number] {
  const size = Math.max(cell, 4);
  return [i * cell - (size - cell) / 2, size];
}

/** The label of token `index` of `seq`, at tick `tick` of the row (left) or column (top) axis. */
function axisLabel(seq: SequenceInfo, index: number, tick: number, axis: "row" | "col", cell: number): HTMLElement {
  const label = h("div", `txm-axis-label txm-axis-${axis}`, truncateLabel(displayToken(seq.text[index]), LABEL_CHARS));
  label.dir = "auto";
  label.style[axis === "row" ? "top" : "left"] = `${(tick + 0.5) * cell}px`;
  if (seq.special[index]) label.classList.add("txm-special");
  label.dataset.axisIndex = String(tick);
  return label;
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
  private drawnData: Drawn | null = null;
  private readonly hint: HTMLElement;
  private readonly zoomOutButton: HTMLButtonElement;
  private readonly resetButton: HTMLButtonElement;
  /** The zoomed window in shown rows / columns, or null for the whole matrix. */
  private zoom: CellWindow | null = null;
  private zoomKind = "";
  private window: CellWindow = { q0: 0, q1: 0, k0: 0, k1: 0 };
  private tileMasks = new WeakMap<LayerData, Uint8Array | null>();
  private blockMatrix: { block: LayerData; key: string; matrix: Float32Array } | null = null;
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
    this.hint = h("span", "txm-hint", "rows: queries, columns: keys · double-click to zoom");
    this.zoomOutButton = h("button", "txm-zoom-out", "zoom out");
    this.resetButton = h("button", "txm-zoom-reset", "whole matrix");
    for (const b of [this.zoomOutButton, this.resetButton]) {
      b.type = "button";
      b.hidden = true;
    }
    header.append(this.title, this.hint, this.zoomOutButton, this.resetButton);

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
    this.listen(this.overlay, "dblclick", (e) => this.onZoomIn(e as MouseEvent));
    this.listen(this.zoomOutButton, "click", () => this.setZoom(this.zoom && this.frame ? zoomOut(this.zoom, this.frame.queries.text.length, this.frame.keys.text.length) : null));
    this.listen(this.resetButton, "click", () => this.setZoom(null));
  }

  /** The zoomed window (shown rows / columns), or null when the whole matrix is shown. */
  get zoomWindow(): CellWindow | null {
    return this.zoom;
  }

  /** Show window `w` of the matrix (null: all of it) and redraw. */
  setZoom(w: CellWindow | null): void {
    this.zoom = w;
    if (this.state && this.frame) this.update(this.state, this.frame, "all");
  }

  /** Zoom in around the focused token (else the window's centre), or out: the + and - keys. */
  zoomStep(inward: boolean): void {
    const frame = this.frame, s = this.state;
    if (!frame || !s) return;
    const Q = frame.queries.text.length, K = frame.keys.text.length;
    if (!inward) {
      this.setZoom(this.zoom ? zoomOut(this.zoom, Q, K) : null);
      return;
    }
    const w = this.zoom ?? { q0: 0, q1: Q, k0: 0, k1: K };
    if (w.q1 - w.q0 <= 16 && w.k1 - w.k0 <= 16) return;
    const focus = focusOf(s);
    const row = focus.index >= 0 && focus.side === "query" ? frame.crop.rowOf[focus.index] ?? -1 : -1;
    const col = focus.index >= 0 && focus.side === "key" ? frame.crop.colOf[focus.index] ?? -1 : -1;
    const same = frame.info.queries === frame.info.keys;
    const q = row >= 0 ? row : col >= 0 && same ? col : (w.q0 + w.q1) / 2;
    const k = col >= 0 ? col : row >= 0 && same ? row : (w.k0 + w.k1) / 2;
    this.setZoom(zoomIn(w, q, k, Q, K));
  }

  private onZoomIn(e: MouseEvent): void {
    const cell = this.cellFromEvent(e);
    if (!cell || !this.frame) return;
    e.preventDefault();
    const Q = this.frame.queries.text.length, K = this.frame.keys.text.length;
    const w = this.window;
    if (w.q1 - w.q0 <= 16 && w.k1 - w.k0 <= 16) return;
    this.setZoom(zoomIn(w, w.q0 + cell.query, w.k0 + cell.key, Q, K));
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
    const frame = this.frame;
    if (!cell || !frame) {
      this.onLeave();
      return;
    }
    this.showTooltip(cell, e);
    const before = this.ctx.store.get();
    this.ctx.store.set({ hover: frame.crop.rows[this.window.q0 + cell.query], hoverSide: "query" });
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
    const query = this.frame.crop.rows[this.window.q0 + cell.query];
    const s = this.ctx.store.get();
    if (s.pinned === query && s.pinnedSide === "query") this.ctx.store.set({ pinned: -1 });
    else this.ctx.store.set({ pinned: query, pinnedSide: "query" });
  }

  private showTooltip(cell: { query: number; key: number }, e: MouseEvent): void {
    const s = this.state, frame = this.frame, drawn = this.drawnData;
    if (!s || !frame || !drawn) return;
    const host = this.element.getBoundingClientRect();
    const { queries, keys, crop } = frame;
    const row = this.window.q0 + cell.query, col = this.window.k0 + cell.key;
    const idx = (drawn.rowMap ? drawn.rowMap[cell.query] : cell.query) * drawn.cols + (drawn.colMap ? drawn.colMap[cell.key] : cell.key);
    const masked = drawn.mask ? !drawn.mask[idx] : false;
    clear(this.tooltip);
    const line = h("div", "txm-tooltip-main");
    const token = (text: string) => {
      const el = h("span", "txm-tooltip-token", displayToken(text));
      el.dir = "auto";
      return el;
    };
    const value = h("span", "txm-tooltip-value");
    const approx = drawn.approx && !masked && !s.showMask;
    value.textContent = masked ? "masked" : s.showMask ? "allowed" : (approx ? "≈ " : "") + formatWeight(drawn.matrix[idx]);
    if (approx) {
      value.classList.add("txm-approx");
      value.title = drawn.pool > 1 ? `max over a ${drawn.pool}×${drawn.pool} tile; exact value on its way` : "quantized value; exact value on its way";
    }
    line.append(token(queries.text[row] ?? ""), h("span", "txm-tooltip-arrow", " → "), token(keys.text[col] ?? ""), h("span", "", ": "), value);
    const what = s.head >= 0 ? `head ${s.head}` : `${s.aggregate} of ${s.heads.length} head${s.heads.length === 1 ? "" : "s"}`;
    const sub = h("div", "txm-tooltip-sub", `query ${crop.rows[row]} → key ${crop.cols[col]} · layer ${s.layer} · ${what}`);
    this.tooltip.append(line, sub);
    this.tooltip.hidden = false;
    if (approx && !showsRollout(s)) this.exactValue(value, s, frame, crop.rows[row], crop.cols[col]);
    let x = e.clientX - host.left + 14;
    const y = e.clientY - host.top + 14;
    const tw = this.tooltip.offsetWidth || 200;
    if (host.width > 0 && x + tw > host.width) x = Math.max(0, e.clientX - host.left - tw - 10);
    this.tooltip.style.left = `${x}px`;
    this.tooltip.style.top = `${y}px`;
  }

  /** Replace the approximate value in `el` by the exact one of (query, key), fetched if needed. */
  private exactValue(el: HTMLElement, s: Readonly<Selection>, frame: Frame, query: number, key: number): void {
    const source = this.ctx.source;
    const K = source.meta.sequences[frame.info.keys].text.length;
    const put = (row: LayerData) => {
      if (!el.isConnected && el.parentNode === null) return;
      el.textContent = formatWeight(shownOfRow(row.data, s.heads, s.head, K, key));
      el.classList.remove("txm-approx");
      el.title = "exact value";
    };
    const window = { q0: query, q1: query + 1, k0: 0, k1: K };
    const have = source.peekBlock(s.kind, s.layer, window);
    if (have) {
      put(have);
      return;
    }
    source.getBlock(s.kind, s.layer, window).then(
      (row) => {
        const now = this.ctx.store.get();
        if (now.kind === s.kind && now.layer === s.layer && now.head === s.head && now.heads === s.heads) put(row);
      },
      () => {
        el.title = "the exact value could not be fetched";
      },
    );
  }

  update(state: Readonly<Selection>, frame: Frame, changes: Changes): void {
    this.state = state;
    if (focusOnly(changes) && this.drawn && this.frame === frame) {
      this.drawOverlay(); // a hover: the heat map, labels and sizes are as they were
      return;
    }
    this.frame = frame;
    const Q = frame.queries.text.length, K = frame.keys.text.length;
    const pool = frame.pool ?? 1;
    if (state.kind !== this.zoomKind || (this.zoom && (this.zoom.q1 > Q || this.zoom.k1 > K))) this.zoom = null;
    this.zoomKind = state.kind;
    const w = this.zoom ?? { q0: 0, q1: Q, k0: 0, k1: K };
    this.window = w;
    const rows = w.q1 - w.q0, cols = w.k1 - w.k0;
    const { queries, keys } = frame;
    const rowLabelW = this.labelExtent(queries);
    const colLabelH = this.labelExtent(keys);
    if (typeof changes === "string" || this.width === 0) this.width = this.element.clientWidth || 460;
    const width = this.width;
    const available = Math.min(this.maxSize, width - rowLabelW - 12);
    const geom = matrixGeometry(rows, cols, available, this.maxCell, pool > 1 ? 0.02 : 0.5);
    this.geom = geom;
    this.grid.style.gridTemplateColumns = `${rowLabelW}px ${geom.width}px`;
    this.grid.style.gridTemplateRows = `${colLabelH}px ${geom.height}px`;
    this.plot.style.width = `${geom.width}px`;
    this.plot.style.height = `${geom.height}px`;

    const drawn = this.choose(state, frame, w);
    if (!drawn) return; // a rollout still loading: the explorer shows the status
    this.drawnData = drawn;
    const dpr = typeof window !== "undefined" ? window.devicePixelRatio || 1 : 1;
    const dark = this.ctx.theme.dark;
    const baseKey = [geom.cell, dpr, dark, state.showMask, state.pair, w.q0, w.q1, w.k0, w.k1, drawn.pool].join("|");
    if (baseKey !== this.baseKey || this.baseMatrix !== drawn.matrix) {
      this.drawBase(drawn, geom, dark, state.showMask);
      this.baseKey = baseKey;
      this.baseMatrix = drawn.matrix;
      const pair = state.pair === "all" || pool > 1 ? "" : ` · ${state.pair[0]}→${state.pair[1]}`;
      const what = (state.showMask ? `${frame.info.mask === "none" ? "no" : frame.info.mask} mask` : describeShown(this.ctx.source.meta, state)) + pair;
      this.title.textContent = what;
      this.base.setAttribute("aria-label", `attention matrix, ${what}`);
    }
    this.hint.textContent = this.caption(drawn, w, Q, K);
    this.zoomOutButton.hidden = this.resetButton.hidden = this.zoom === null;
    const labelsKey = `${state.kind}|${state.pair}|${geom.cell}|${rowLabelW}|${colLabelH}|${w.q0}|${w.q1}|${w.k0}|${w.k1}`;
    if (labelsKey !== this.labelsKey) {
      this.buildLabels(queries, keys, geom, rowLabelW, colLabelH, w);
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
    this.element.dataset.pool = String(drawn.pool);
    this.element.dataset.window = `${w.q0},${w.q1},${w.k0},${w.k1}`;
    this.element.dataset.approx = drawn.approx ? "1" : "0";
    this.drawn = true;
  }

  /** What the caption says about the drawn values (how tiles are pooled, the window, the error). */
  private caption(d: Drawn, w: CellWindow, Q: number, K: number): string {
    const zoomed = this.zoom ? `tokens ${w.q0}–${w.q1 - 1} × ${w.k0}–${w.k1 - 1} of ${Q} × ${K} · ` : "";
    if (d.pool > 1) return `${zoomed}each cell: max over ${d.pool} × ${d.pool} tokens · double-click to zoom`;
    const err = this.frame?.layer.maxError;
    const approx = d.approx && err !== undefined ? `values within ±${formatWeight(err)} (hover: exact) · ` : "";
    return `${zoomed}${approx}rows: queries, columns: keys${this.zoom ? "" : " · double-click to zoom"}`;
  }

  /** The matrix to draw for the window: exact or dequantized cells, exact fetched windows, or pooled tiles. */
  private choose(state: Readonly<Selection>, frame: Frame, w: CellWindow): Drawn | null {
    const pool = frame.pool ?? 1;
    const rows = w.q1 - w.q0, cols = w.k1 - w.k0;
    const whole = w.q0 === 0 && w.k0 === 0 && rows === frame.queries.text.length && cols === frame.keys.text.length;
    if (pool === 1) {
      const full = matrixFor(this.ctx, state, frame);
      if (!full) return null;
      const C = frame.keys.text.length;
      return {
        matrix: whole ? full : subMatrix(full, C, w), cols: whole ? C : cols, rowMap: null, colMap: null,
        mask: frame.mask && !whole ? subMatrix(frame.mask, C, w) : frame.mask,
        approx: !(frame.layer.exact ?? true), pool: 1,
      };
    }
    if (showsRollout(state)) return null;
    const { info } = frame;
    const K = frame.keys.text.length;
    if (this.zoom && rows * cols <= EXACT_WINDOW_CELLS) {
      const block = this.ctx.source.peekBlock(state.kind, state.layer, w);
      if (block) {
        const key = `${state.head}|${state.heads.join(",")}`;
        if (!this.blockMatrix || this.blockMatrix.block !== block || this.blockMatrix.key !== key) {
          this.blockMatrix = { block, key, matrix: shownMatrix(block, state.heads, state.head) };
        }
        return { matrix: this.blockMatrix.matrix, cols, rowMap: null, colMap: null, mask: windowMask(info, K, w), approx: false, pool: 1 };
      }
      const asked = { ...w };
      this.ctx.source.getBlock(state.kind, state.layer, w).then(
        () => {
          const z = this.zoom, s = this.state;
          if (z && s && this.frame && z.q0 === asked.q0 && z.q1 === asked.q1 && z.k0 === asked.k0 && z.k1 === asked.k1) this.update(s, this.frame, "all");
        },
        (err: unknown) => this.ctx.report(err),
      );
    }
    let mask = this.tileMasks.get(frame.layer);
    if (mask === undefined) {
      mask = tileMask(info, frame.queries.text.length, K, pool);
      this.tileMasks.set(frame.layer, mask);
    }
    return {
      matrix: this.ctx.matrices.get(frame.layer, state.heads, state.head), cols: frame.layer.shape[2],
      rowMap: tileIndex(w.q0, rows, pool), colMap: tileIndex(w.k0, cols, pool), mask, approx: true, pool,
    };
  }

  /** Room for an axis's labels: long enough for its longest (truncated) token. */
  private labelExtent(seq: SequenceInfo): number {
    let longest = 1;
    for (const t of seq.text) longest = Math.max(longest, Math.min(LABEL_CHARS, Array.from(displayToken(t)).length));
    return Math.max(36, Math.min(LABEL_CHARS * CHAR_PX + 12, longest * CHAR_PX + 12));
  }

  private buildLabels(queries: SequenceInfo, keys: SequenceInfo, g: MatrixGeometry, rowW: number, colH: number, w: CellWindow): void {
    clear(this.xLabels);
    clear(this.yLabels);
    this.rowTicks = [];
    this.colTicks = [];
    this.xLabels.style.height = `${colH}px`;
    this.yLabels.style.width = `${rowW}px`;
    this.yLabels.style.height = `${g.height}px`;
    this.xLabels.style.width = `${g.width}px`;
    for (const r of labelTicks(w.q1 - w.q0, g.cell, 13)) {
      const label = axisLabel(queries, w.q0 + r, r, "row", g.cell);
      this.rowTicks.push(label);
      this.yLabels.append(label);
    }
    for (const c of labelTicks(w.k1 - w.k0, g.cell, 13)) {
      const label = axisLabel(keys, w.k0 + c, c, "col", g.cell);
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
  private drawBase(d: Drawn, g: MatrixGeometry, dark: boolean, showMask: boolean): void {
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
    // Device pixel -> shown cell -> entry of the drawn matrix (a tile when pooled); -1 on the
    // 1 px gutter between cells when cells are large.
    const axis = (pixels: number, cells: number, map: Int32Array | null) => {
      const out = new Int32Array(pixels);
      const gutter = pixels / Math.max(1, cells) >= 10;
      for (let p = 0; p < pixels; p++) {
        const c = Math.min(cells - 1, Math.floor((p * cells) / pixels));
        out[p] = gutter && Math.floor(((p + 1) * cells) / pixels) !== c && p !== pixels - 1 ? -1 : map ? map[c] : c;
      }
      return out;
    };
    const colKey = axis(pw, K, d.colMap), rowQuery = axis(ph, Q, d.rowMap);
    const { matrix, mask } = d;
    const width = d.cols;
    // Colour per entry first (0 marks a masked entry: hatched per pixel below).
    const cells = new Uint32Array(matrix.length);
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
      const cellRow = q * width;
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
    const w = this.window;
    const shownAt = (map: Int32Array, start: number, end: number) => {
      const at = focus.index >= 0 ? map[focus.index] ?? -1 : -1;
      return at >= start && at < end ? at - start : -1;
    };
    const row = focus.side === "query" || same ? shownAt(frame.crop.rowOf, w.q0, w.q1) : -1;
    const col = focus.side === "key" || same ? shownAt(frame.crop.colOf, w.k0, w.k1) : -1;
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
    this.placeFocusLabel(this.yFocus, row, frame.queries, "top", g, w.q0);
    this.placeFocusLabel(this.xFocus, col, frame.keys, "left", g, w.k0);
    this.element.dataset.focusRow = String(row >= 0 ? frame.crop.rows[w.q0 + row] : -1);
    this.element.dataset.focusCol = String(col >= 0 ? frame.crop.cols[w.k0 + col] : -1);
  }

  private placeFocusLabel(label: HTMLElement, index: number, seq: SequenceInfo, prop: "top" | "left", g: MatrixGeometry, start: number): void {
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
    label.textContent = truncateLabel(displayToken(seq.text[start + index] ?? ""), LABEL_CHARS);
    label.style[prop] = `${(index + 0.5) * g.cell}px`;
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
