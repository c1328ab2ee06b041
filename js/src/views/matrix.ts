/**
 * Matrix view: the heat map of one head (or the mean or rollout of the selected heads) of the
 * selected layer, queries as rows, keys as columns, cropped to the pair filter; or the mask
 * itself (allowed vs masked). The heat map is drawn once per (matrix, size, theme) into a base
 * canvas in one ImageData pass; hover and focus only redraw a transparent overlay canvas on
 * top, so pointer moves stay cheap at n = 512.
 *
 * This module lays the view out, handles the pointer and decides what to redraw; the pieces
 * live beside it: matrix-cells (which values are drawn), matrix-zoom (the window),
 * matrix-draw (the canvases), matrix-axes, matrix-legend and matrix-tooltip.
 */

import { h } from "../dom";
import type { Frame } from "../frame";
import { cellAt, matrixGeometry, type MatrixGeometry } from "../layout";
import { describeShown } from "../shown";
import type { CellWindow } from "../source";
import { focusOf, type Selection } from "../state";
import { Listeners } from "./listeners";
import { labelExtent, MatrixAxes } from "./matrix-axes";
import { describeCells, drawnIndex, MatrixCells, type DrawnCells } from "./matrix-cells";
import { paintHeatmap, paintOverlay } from "./matrix-draw";
import { MatrixLegend } from "./matrix-legend";
import { MatrixTooltip } from "./matrix-tooltip";
import { MatrixZoom, sameWindow } from "./matrix-zoom";
import { focusOnly, type Changes, type View, type ViewContext } from "./view";
import { WeightEditor } from "./weight-editor";

export interface MatrixOptions {
  /** Largest side of the heat map in CSS pixels. */
  maxSize?: number;
  /** Largest cell side in CSS pixels (short sequences). */
  maxCell?: number;
}

export class MatrixView implements View {
  readonly element: HTMLElement;
  drawn = false;

  private readonly title: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly zoomOutButton: HTMLButtonElement;
  private readonly resetButton: HTMLButtonElement;
  private readonly grid: HTMLElement;
  private readonly plot: HTMLElement;
  private readonly base: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly axes = new MatrixAxes();
  private readonly legend = new MatrixLegend();
  private readonly tooltip: MatrixTooltip;
  private readonly cells: MatrixCells;
  private readonly zoom = new MatrixZoom();
  /** Alt-click on a cell: set that weight or block the key (the kernel reruns). */
  private readonly editor: WeightEditor | null;
  private readonly listeners: Listeners;
  private readonly maxSize: number;
  private readonly maxCell: number;

  private state: Readonly<Selection> | null = null;
  private frame: Frame | null = null;
  private drawnData: DrawnCells | null = null;
  /** The window drawn, in shown rows / columns. */
  private window: CellWindow = { q0: 0, q1: 0, k0: 0, k1: 0 };
  private geom: MatrixGeometry | null = null;
  private baseKey = "";
  private baseMatrix: Float32Array | null = null;
  private hoverCell: { query: number; key: number } | null = null;
  private width = 0;

  constructor(private readonly ctx: ViewContext, opts: MatrixOptions = {}) {
    this.maxSize = opts.maxSize ?? 560;
    this.maxCell = opts.maxCell ?? 28;
    this.cells = new MatrixCells(ctx);
    this.tooltip = new MatrixTooltip(ctx);
    this.listeners = new Listeners((err) => this.ctx.report(err));

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
    this.plot = h("div", "txm-matrix-plot");
    this.base = h("canvas", "txm-matrix-base");
    this.overlay = h("canvas", "txm-matrix-overlay");
    this.base.setAttribute("role", "img");
    this.plot.append(this.base, this.overlay);
    this.grid.append(h("div", "txm-matrix-corner"), this.axes.xLabels, this.axes.yLabels, this.plot);
    this.element.append(header, this.grid, this.legend.element, this.tooltip.element);
    this.editor = ctx.interventions ? new WeightEditor(ctx.interventions, (err) => this.ctx.report(err)) : null;
    if (this.editor) this.element.append(this.editor.element);

    // Pointer events where the browser has them; the compatibility mouse events that follow
    // each pointer event are then ignored (mouse events alone still work, e.g. in tests).
    let pointer = false;
    const on = this.listeners.on.bind(this.listeners);
    on(this.overlay, "pointermove", (e) => {
      pointer = true;
      this.onMove(e as MouseEvent);
    });
    on(this.overlay, "mousemove", (e) => pointer || this.onMove(e as MouseEvent));
    on(this.overlay, "pointerleave", () => {
      pointer = true;
      this.onLeave();
    });
    on(this.overlay, "mouseleave", () => pointer || this.onLeave());
    on(this.overlay, "click", (e) => this.onClick(e as MouseEvent));
    on(this.overlay, "dblclick", (e) => this.onZoomIn(e as MouseEvent));
    on(this.zoomOutButton, "click", () => this.setZoom(this.frame ? this.zoom.outward(this.frame) : null));
    on(this.resetButton, "click", () => this.setZoom(null));
  }

  /** The zoomed window (shown rows / columns), or null when the whole matrix is shown. */
  get zoomWindow(): CellWindow | null {
    return this.zoom.current;
  }

  /** Show window `w` of the matrix (null: all of it) and redraw. */
  setZoom(w: CellWindow | null): void {
    this.zoom.current = w;
    if (this.state && this.frame) this.update(this.state, this.frame, "all");
  }

  /** Zoom in around the focused token (else the window's centre), or out: the + and - keys. */
  zoomStep(inward: boolean): void {
    const frame = this.frame, s = this.state;
    if (!frame || !s) return;
    if (!inward) {
      this.setZoom(this.zoom.outward(frame));
      return;
    }
    const w = this.zoom.inwardAround(frame, focusOf(s));
    if (w) this.setZoom(w);
  }

  private onZoomIn(e: MouseEvent): void {
    const cell = this.cellFromEvent(e);
    if (!cell || !this.frame) return;
    e.preventDefault();
    const w = this.zoom.inwardAt(this.frame, this.window, cell.query, cell.key);
    if (w) this.setZoom(w);
  }

  /** Redraw once the exact cells of a zoom window arrive, if that window is still shown. */
  private onWindowArrived(asked: CellWindow): void {
    const z = this.zoom.current, s = this.state;
    if (z && s && this.frame && sameWindow(z, asked)) this.update(s, this.frame, "all");
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
    const s = this.state, drawn = this.drawnData;
    if (s && drawn) {
      const at = { ...cell, clientX: e.clientX, clientY: e.clientY };
      this.tooltip.show(s, frame, drawn, this.window, at, this.element.getBoundingClientRect());
    }
    const before = this.ctx.store.get();
    this.ctx.store.set({ hover: frame.crop.rows[this.window.q0 + cell.query], hoverSide: "query" });
    // Same row, other column: the store did not change, so redraw the cell outline here.
    if (before === this.ctx.store.get()) this.drawOverlay();
  }

  private onLeave(): void {
    this.hoverCell = null;
    this.tooltip.hide();
    const before = this.ctx.store.get();
    this.ctx.store.set({ hover: -1 });
    if (before === this.ctx.store.get()) this.drawOverlay();
  }

  private onClick(e: MouseEvent): void {
    const cell = this.cellFromEvent(e);
    if (!cell || !this.frame) return;
    if ((e.altKey || e.ctrlKey || e.metaKey) && this.editor) {
      this.openEditor(cell, e);
      return;
    }
    const query = this.frame.crop.rows[this.window.q0 + cell.query];
    const s = this.ctx.store.get();
    if (s.pinned === query && s.pinnedSide === "query") this.ctx.store.set({ pinned: -1 });
    else this.ctx.store.set({ pinned: query, pinnedSide: "query" });
  }

  /** The weight editor for a cell (its exact value when the drawn one is). */
  private openEditor(cell: { query: number; key: number }, e: MouseEvent): void {
    const frame = this.frame, s = this.state, drawn = this.drawnData, editor = this.editor;
    if (!frame || !s || !editor) return;
    const query = frame.crop.rows[this.window.q0 + cell.query], key = frame.crop.cols[this.window.k0 + cell.key];
    const exact = drawn && !drawn.approx && drawn.pool === 1 && !s.showMask && s.head >= 0;
    const weight = exact ? drawn.matrix[drawnIndex(drawn, cell.query, cell.key)] : Number.NaN;
    const host = this.element.getBoundingClientRect();
    this.tooltip.hide();
    editor.open({ kind: s.kind, layer: frame.layer.layer, head: s.head, query, key, weight,
      queryText: frame.queries.text[this.window.q0 + cell.query] ?? "", keyText: frame.keys.text[this.window.k0 + cell.key] ?? "" },
    e.clientX - host.left + 8, e.clientY - host.top + 8);
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
    const w = this.zoom.windowFor(state.kind, frame);
    this.window = w;
    const { queries, keys } = frame;
    const rowLabelW = labelExtent(queries);
    const colLabelH = labelExtent(keys);
    if (typeof changes === "string" || this.width === 0) this.width = this.element.clientWidth || 460;
    const available = Math.min(this.maxSize, this.width - rowLabelW - 12);
    const geom = matrixGeometry(w.q1 - w.q0, w.k1 - w.k0, available, this.maxCell, pool > 1 ? 0.02 : 0.5);
    this.geom = geom;
    this.grid.style.gridTemplateColumns = `${rowLabelW}px ${geom.width}px`;
    this.grid.style.gridTemplateRows = `${colLabelH}px ${geom.height}px`;
    this.plot.style.width = `${geom.width}px`;
    this.plot.style.height = `${geom.height}px`;

    const zoomed = this.zoom.current !== null;
    const drawn = this.cells.choose(state, frame, w, zoomed, (asked) => this.onWindowArrived(asked));
    if (!drawn) return; // a rollout still loading: the explorer shows the status
    this.drawnData = drawn;
    const dpr = typeof window !== "undefined" ? window.devicePixelRatio || 1 : 1;
    const dark = this.ctx.theme.dark;
    const baseKey = [geom.cell, dpr, dark, state.showMask, state.pair, w.q0, w.q1, w.k0, w.k1, drawn.pool].join("|");
    if (baseKey !== this.baseKey || this.baseMatrix !== drawn.matrix) {
      paintHeatmap(this.base, drawn, geom, dark, state.showMask);
      this.baseKey = baseKey;
      this.baseMatrix = drawn.matrix;
      const pair = state.pair === "all" || pool > 1 ? "" : ` · ${state.pair[0]}→${state.pair[1]}`;
      const what = (state.showMask ? `${frame.info.mask === "none" ? "no" : frame.info.mask} mask` : describeShown(this.ctx.source.meta, state)) + pair;
      this.title.textContent = what;
      this.base.setAttribute("aria-label", `attention matrix, ${what}`);
    }
    this.hint.textContent = describeCells(drawn, w, zoomed, frame);
    this.zoomOutButton.hidden = this.resetButton.hidden = !zoomed;
    this.axes.build(`${state.kind}|${state.pair}`, queries, keys, geom, rowLabelW, colLabelH, w);
    this.legend.show(dark, state.showMask);
    this.drawOverlay();
    const data = this.element.dataset;
    data.drawnLayer = String(frame.layer.layer);
    data.drawnHead = String(state.head);
    data.drawnKind = state.kind;
    data.drawnAggregate = state.head >= 0 ? "head" : state.aggregate;
    data.mode = state.showMask ? "mask" : "weights";
    data.shape = `${Q}x${K}`;
    data.pool = String(drawn.pool);
    data.window = `${w.q0},${w.q1},${w.k0},${w.k1}`;
    data.approx = drawn.approx ? "1" : "0";
    this.drawn = true;
  }

  /** Focus row/column, hovered cell, axis focus labels. Cheap: runs on every hover. */
  private drawOverlay(): void {
    const s = this.state, g = this.geom, frame = this.frame;
    if (!s || !g || !frame) return;
    const focus = focusOf(s);
    const same = frame.info.queries === frame.info.keys;
    const w = this.window;
    // Where the focused token is in the window (-1: not in it).
    const shownAt = (map: Int32Array, start: number, end: number) => {
      const at = focus.index >= 0 ? map[focus.index] ?? -1 : -1;
      return at >= start && at < end ? at - start : -1;
    };
    const row = focus.side === "query" || same ? shownAt(frame.crop.rowOf, w.q0, w.q1) : -1;
    const col = focus.side === "key" || same ? shownAt(frame.crop.colOf, w.k0, w.k1) : -1;
    paintOverlay(this.overlay, g, { row, col, hover: this.hoverCell }, this.ctx.theme.dark);
    this.axes.focus(row, col, frame.queries, frame.keys, g, w);
    this.element.dataset.focusRow = String(row >= 0 ? frame.crop.rows[w.q0 + row] : -1);
    this.element.dataset.focusCol = String(col >= 0 ? frame.crop.cols[w.k0 + col] : -1);
  }

  destroy(): void {
    this.listeners.removeAll();
    this.editor?.destroy();
    this.element.remove();
  }
}
