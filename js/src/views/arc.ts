/**
 * Arc view: query tokens on the left, key tokens on the right, curves between them on a canvas,
 * one colour per selected head, width and opacity by weight. Hover a token to focus it (a query
 * shows where it attends, a key what attends to it); click to pin. Only the focused token's
 * curves are drawn (a faint overview of strong links when nothing is focused), only between
 * rows in or crossing the viewport, and weights under a small threshold are skipped.
 *
 * This module lays the view out, handles the pointer and scrolling and decides which picture to
 * draw; beside it: arc-columns (the token labels), arc-weights (which weights) and arc-draw
 * (the strokes).
 */

import { h, prepareCanvas } from "../dom";
import type { Frame } from "../frame";
import { focusOf, type Selection, type Side } from "../state";
import { revealTop, stillOnToken, TokenColumns, tokenOf } from "./arc-columns";
import { drawFocusArcs, drawMeanOverview, drawTopKOverview, type ArcViewport } from "./arc-draw";
import { denseVisitor, sparseVisitor, tintWeights } from "./arc-weights";
import { Listeners } from "./listeners";
import { touches, type Changes, type View, type ViewContext } from "./view";

export interface ArcOptions {
  /** Height of one token row in CSS pixels. */
  rowHeight?: number;
  /** Most the view grows before its columns scroll. */
  maxHeight?: number;
  /** Weights below this are not drawn. */
  threshold?: number;
}

export class ArcView implements View {
  readonly element: HTMLElement;
  drawn = false;

  private readonly title: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly scroll: HTMLElement;
  private readonly body: HTMLElement;
  private readonly columns = new TokenColumns();
  private readonly gap: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly listeners: Listeners;
  private readonly rowHeight: number;
  private readonly maxHeight: number;
  private readonly threshold: number;

  private builtFor = "";
  private state: Readonly<Selection> | null = null;
  private shown: Frame | null = null;
  private frame = 0;
  private size: { width: number; height: number } | null = null;
  private lastFocus = "";

  constructor(private readonly ctx: ViewContext, opts: ArcOptions = {}) {
    this.rowHeight = opts.rowHeight ?? 20;
    this.maxHeight = opts.maxHeight ?? 520;
    this.threshold = opts.threshold ?? 0.01;
    this.listeners = new Listeners((err) => this.ctx.report(err));

    this.element = h("div", "txm-view txm-arc");
    this.element.dataset.view = "arc";
    this.element.dataset.focusToken = "-1";
    const header = h("div", "txm-view-header");
    this.title = h("span", "txm-view-title", "Arcs");
    this.hint = h("span", "txm-hint", "hover a token, click to pin");
    header.append(this.title, this.hint);

    this.scroll = h("div", "txm-arc-scroll");
    this.scroll.style.maxHeight = `${this.maxHeight}px`;
    this.body = h("div", "txm-arc-body");
    this.gap = h("div", "txm-arc-gap");
    this.canvas = h("canvas", "txm-arc-canvas");
    this.canvas.setAttribute("aria-hidden", "true");
    this.gap.append(this.canvas);
    this.body.append(this.columns.queryCol, this.gap, this.columns.keyCol);
    this.scroll.append(this.body);
    const axes = h("div", "txm-arc-axes");
    axes.append(h("span", "txm-axis-name", "queries"), h("span", "txm-axis-name", "keys"));
    this.element.append(header, axes, this.scroll);

    const on = this.listeners.on.bind(this.listeners);
    on(this.body, "mouseover", (e) => this.onEnter(e));
    on(this.body, "pointerover", (e) => this.onEnter(e));
    on(this.body, "mouseenter", (e) => this.onEnter(e), true);
    on(this.body, "pointerenter", (e) => this.onEnter(e), true);
    on(this.body, "mouseout", (e) => this.onOut(e as MouseEvent));
    on(this.body, "mouseleave", () => this.ctx.store.set({ hover: -1 }));
    on(this.body, "click", (e) => this.onClick(e));
    on(this.scroll, "scroll", () => this.schedule());
  }

  private onEnter(e: Event): void {
    const t = tokenOf(e, this.body);
    if (t) this.ctx.store.set({ hover: t.index, hoverSide: t.side });
  }

  private onOut(e: MouseEvent): void {
    if (!stillOnToken(e.relatedTarget, this.body)) this.ctx.store.set({ hover: -1 });
  }

  private onClick(e: Event): void {
    const t = tokenOf(e, this.body);
    if (!t) return;
    const s = this.ctx.store.get();
    if (s.pinned === t.index && s.pinnedSide === t.side) this.ctx.store.set({ pinned: -1 });
    else this.ctx.store.set({ pinned: t.index, pinnedSide: t.side, hover: t.index, hoverSide: t.side });
  }

  update(state: Readonly<Selection>, frame: Frame, changes: Changes): void {
    this.state = state;
    this.shown = frame;
    const labels = `${state.kind}|${state.pair}|${frame.queries.text.length}|${frame.keys.text.length}`;
    if (this.builtFor !== labels) {
      this.buildLabels(frame);
      this.builtFor = labels;
      this.size = null;
    }
    if (typeof changes === "string") this.size = null;
    if (touches(changes, "heads", "kind")) {
      this.hint.textContent = state.heads.length === 0 ? "no heads selected" : "hover a token, click to pin";
    }
    this.draw();
  }

  /** The token labels, and the scroller sized for them. */
  private buildLabels(frame: Frame): void {
    this.columns.build(frame);
    const rows = Math.max(frame.queries.text.length, frame.keys.text.length);
    this.body.style.height = `${rows * this.rowHeight}px`;
    this.element.style.setProperty("--txm-row", `${this.rowHeight}px`);
    this.scroll.style.height = `${Math.min(this.maxHeight, rows * this.rowHeight)}px`;
  }

  /** Redraw on the next frame (scrolling, resizing). */
  schedule(): void {
    if (this.frame) return;
    const raf = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (fn: FrameRequestCallback) => setTimeout(() => fn(0), 16) as unknown as number;
    this.frame = raf(() => {
      this.frame = 0;
      try {
        this.draw();
      } catch (err) {
        this.ctx.report(err);
      }
    });
  }

  private draw(): void {
    const state = this.state, frame = this.shown;
    if (!state || !frame) return;
    // Read layout before writing to the DOM, so a hover never forces a synchronous layout.
    // Rows are tokens (a pooled layer has fewer rows than tokens).
    const rows = Math.max(frame.queries.text.length, frame.keys.text.length);
    if (!this.size) {
      this.size = {
        width: this.gap.clientWidth || 160,
        height: this.scroll.clientHeight || Math.min(this.maxHeight, rows * this.rowHeight),
      };
    }
    const { width, height } = this.size;
    let top = this.scroll.scrollTop;
    const focus = focusOf(state);
    // Where the focused token is shown (-1: filtered out by the pair filter).
    const at = focus.index < 0 ? -1 : (focus.side === "query" ? frame.crop.rowOf : frame.crop.colOf)[focus.index] ?? -1;
    // A token focused from elsewhere (matrix, Python) that is scrolled out of sight: bring it
    // into view, once per focus change (so the user can still scroll away from a pinned token).
    const focusKey = `${state.kind}/${state.pair}/${focus.side}/${focus.index}`;
    if (focusKey !== this.lastFocus) {
      this.lastFocus = focusKey;
      const revealed = revealTop(at, top, height, this.rowHeight, rows);
      if (revealed !== null) this.scroll.scrollTop = top = revealed;
    }
    this.columns.mark(at, focus.side);
    const pooled = (frame.pool ?? 1) > 1;
    this.tint(state, frame, pooled ? -1 : at, focus.side);

    const { ctx } = prepareCanvas(this.canvas, width, height);
    if (ctx) {
      ctx.clearRect(0, 0, width, height);
      const vp: ArcViewport = { ctx, top, width, height, rowHeight: this.rowHeight, dark: this.ctx.theme.dark };
      if (pooled) this.drawSparse(vp, state, frame, at, focus.side);
      else if (at >= 0) this.drawDense(vp, state, frame, at, focus.side);
      else if (focus.index < 0) this.drawOverview(vp, state, frame);
    }
    this.element.dataset.focusToken = String(focus.index);
    this.element.dataset.drawnLayer = String(frame.layer.layer);
    this.element.dataset.focusSide = focus.side;
    this.drawn = true;
  }

  /** Shade the other column's labels by the mean weight of the selected heads (`index`: shown row). */
  private tint(state: Readonly<Selection>, frame: Frame, index: number, side: Side): void {
    let weights = new Map<number, number>();
    if (index >= 0 && state.heads.length > 0) {
      const [, Q, K] = frame.layer.shape;
      weights = tintWeights(this.ctx.matrices.get(frame.layer, state.heads, -1), Q, K, frame.mask, index, side);
    }
    this.columns.tint(side === "query" ? "key" : "query", weights);
  }

  /** The focused token's arcs from the full-resolution layer. */
  private drawDense(vp: ArcViewport, state: Readonly<Selection>, frame: Frame, index: number, side: Side): void {
    const visit = denseVisitor(frame.layer, frame.mask, index, side);
    if (visit) drawFocusArcs(vp, index, side, visit, state.heads, frame.layer.shape[0], this.threshold);
  }

  /** Nothing focused: the strong links of the mean of the selected heads, between visible rows. */
  private drawOverview(vp: ArcViewport, state: Readonly<Selection>, frame: Frame): void {
    if (state.heads.length === 0) return;
    const [, Q, K] = frame.layer.shape;
    drawMeanOverview(vp, this.ctx.matrices.get(frame.layer, state.heads, -1), Q, K, frame.mask);
  }

  /**
   * A layer here only as a pooled overview (a long input): the focused token's arcs from its
   * exact row (fetched on hover) or its top-k weights; with no focus, every visible query's top
   * weights of the selected heads.
   */
  private drawSparse(vp: ArcViewport, state: Readonly<Selection>, frame: Frame, index: number, side: Side): void {
    const source = this.ctx.source;
    const topk = source.peekTopK(state.kind, state.layer);
    const K = frame.keys.text.length, Q = frame.queries.text.length;
    this.element.dataset.arcSource = "none";
    if (index >= 0) {
      const window = { q0: index, q1: index + 1, k0: 0, k1: K };
      const row = side === "query" ? source.peekBlock(state.kind, state.layer, window) : undefined;
      if (side === "query" && !row) {
        const asked = { kind: state.kind, layer: state.layer, index };
        source.getBlock(state.kind, state.layer, window).then(() => {
          const s = this.state;
          if (s && s.kind === asked.kind && s.layer === asked.layer && focusOf(s).index === asked.index) this.schedule();
        }, () => {});
      }
      const visit = sparseVisitor(topk, row, index, side);
      if (!visit) return;
      this.element.dataset.arcSource = row ? "row" : "topk";
      if (index < (side === "query" ? Q : K)) drawFocusArcs(vp, index, side, visit, state.heads, frame.info.heads, this.threshold);
      return;
    }
    if (!topk || state.heads.length === 0) return;
    this.element.dataset.arcSource = "topk";
    drawTopKOverview(vp, topk, state.heads, Q);
  }

  destroy(): void {
    if (this.frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(this.frame);
    this.listeners.removeAll();
    this.element.remove();
  }
}
