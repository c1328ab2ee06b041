/**
 * Arc view: query tokens on the left, key tokens on the right, curves between them on a canvas,
 * one colour per selected head, width and opacity by weight. Hover a token to focus it (a query
 * shows where it attends, a key what attends to it); click to pin. Only the focused token's
 * curves are drawn (a faint overview of strong links when nothing is focused), only between
 * rows in or crossing the viewport, and weights under a small threshold are skipped.
 */

import { cssColor, headColor } from "../colors";
import { clear, h, listenGuarded, prepareCanvas } from "../dom";
import type { Frame } from "../frame";
import { arcStyle, displayToken, headOffset, rowCenter, visibleRows } from "../layout";
import type { LayerData } from "../source";
import type { TopKBlock } from "../wire";
import { focusOf, type Selection, type Side } from "../state";
import { touches, type Changes, type View, type ViewContext } from "./view";

export interface ArcOptions {
  /** Height of one token row in CSS pixels. */
  rowHeight?: number;
  /** Most the view grows before its columns scroll. */
  maxHeight?: number;
  /** Weights below this are not drawn. */
  threshold?: number;
}

const BUCKETS = 8;

/** Calls `cb(other, weight)` for the weights of one head between the focused token and the others. */
type Visitor = (head: number, cb: (other: number, weight: number) => void) => void;

/**
 * The arcs of a focused token from sparse data, for layers here only as a pooled overview:
 * a query's exact row when fetched (`row`: (head, K)), else its top-k weights; a key's
 * incoming weights among every query's top-k.
 */
export function sparseVisitor(topk: TopKBlock | undefined, row: LayerData | undefined, index: number, side: Side): Visitor | null {
  if (side === "query" && row) {
    const K = row.shape[2];
    return (head, cb) => {
      const base = head * K;
      for (let j = 0; j < K; j++) cb(j, row.data[base + j]);
    };
  }
  if (!topk) return null;
  const [, Q, k] = topk.shape;
  if (side === "query") {
    return (head, cb) => {
      const base = (head * Q + index) * k;
      for (let r = 0; r < k; r++) cb(topk.index[base + r], topk.data[base + r]);
    };
  }
  return (head, cb) => {
    const base = head * Q * k;
    for (let i = 0; i < Q * k; i++) if (topk.index[base + i] === index) cb(Math.floor(i / k), topk.data[base + i]);
  };
}

interface Segment {
  y1: number;
  y2: number;
}

/** Stroke one path of arcs from the query column (left edge) to the key column (right edge). */
function strokeArcs(ctx: CanvasRenderingContext2D, segs: readonly Segment[], width: number): void {
  const x1 = 1, x2 = width - 1, c1 = width * 0.42, c2 = width * 0.58;
  ctx.beginPath();
  for (const s of segs) {
    ctx.moveTo(x1, s.y1);
    ctx.bezierCurveTo(c1, s.y1, c2, s.y2, x2, s.y2);
  }
  ctx.stroke();
}

/** Which of the overview's four levels (faintest first) an arc of weight `w` belongs to. */
function levelOf(w: number): number {
  return Math.min(3, Math.floor(Math.sqrt(w) * 4));
}

/** The overview's arcs, one stroke per level, each level a little more opaque than the one before. */
function strokeLevels(ctx: CanvasRenderingContext2D, levels: readonly Segment[][], width: number, dark: boolean): void {
  ctx.strokeStyle = dark ? "rgb(190, 196, 210)" : "rgb(80, 92, 112)";
  ctx.lineWidth = 1;
  levels.forEach((segs, l) => {
    if (segs.length === 0) return;
    ctx.globalAlpha = 0.08 + 0.08 * l;
    strokeArcs(ctx, segs, width);
  });
  ctx.globalAlpha = 1;
}

export class ArcView implements View {
  readonly element: HTMLElement;
  drawn = false;

  private readonly title: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly scroll: HTMLElement;
  private readonly body: HTMLElement;
  private readonly queryCol: HTMLElement;
  private readonly keyCol: HTMLElement;
  private readonly gap: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly rowHeight: number;
  private readonly maxHeight: number;
  private readonly threshold: number;

  private builtFor = "";
  private queryEls: HTMLElement[] = [];
  private keyEls: HTMLElement[] = [];
  private focused: HTMLElement | null = null;
  private tinted = new Set<HTMLElement>();
  private state: Readonly<Selection> | null = null;
  private shown: Frame | null = null;
  private frame = 0;
  private size: { width: number; height: number } | null = null;
  private lastFocus = "";
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext, opts: ArcOptions = {}) {
    this.rowHeight = opts.rowHeight ?? 20;
    this.maxHeight = opts.maxHeight ?? 520;
    this.threshold = opts.threshold ?? 0.01;

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
    this.queryCol = h("div", "txm-arc-col txm-arc-queries");
    this.keyCol = h("div", "txm-arc-col txm-arc-keys");
    this.gap = h("div", "txm-arc-gap");
    this.canvas = h("canvas", "txm-arc-canvas");
    this.canvas.setAttribute("aria-hidden", "true");
    this.gap.append(this.canvas);
    this.body.append(this.queryCol, this.gap, this.keyCol);
    this.scroll.append(this.body);
    const axes = h("div", "txm-arc-axes");
    axes.append(h("span", "txm-axis-name", "queries"), h("span", "txm-axis-name", "keys"));
    this.element.append(header, axes, this.scroll);

    this.listen(this.body, "mouseover", (e) => this.onEnter(e));
    this.listen(this.body, "pointerover", (e) => this.onEnter(e));
    this.listen(this.body, "mouseenter", (e) => this.onEnter(e), true);
    this.listen(this.body, "pointerenter", (e) => this.onEnter(e), true);
    this.listen(this.body, "mouseout", (e) => this.onOut(e as MouseEvent));
    this.listen(this.body, "mouseleave", () => this.ctx.store.set({ hover: -1 }));
    this.listen(this.body, "click", (e) => this.onClick(e));
    this.listen(this.scroll, "scroll", () => this.schedule());
  }

  private listen(target: EventTarget, type: string, fn: (e: Event) => void, capture = false): void {
    this.cleanups.push(listenGuarded(target, type, fn, (err) => this.ctx.report(err), capture));
  }

  private tokenOf(e: Event): { index: number; side: Side } | null {
    const target = e.target as Element | null;
    const token = target && typeof target.closest === "function" ? target.closest(".txm-token") : null;
    if (!token || !this.body.contains(token)) return null;
    const side = token.getAttribute("data-side");
    const index = Number(token.getAttribute("data-index"));
    if ((side !== "query" && side !== "key") || !Number.isInteger(index)) return null;
    return { index, side };
  }

  private onEnter(e: Event): void {
    const t = this.tokenOf(e);
    if (t) this.ctx.store.set({ hover: t.index, hoverSide: t.side });
  }

  private onOut(e: MouseEvent): void {
    const to = e.relatedTarget as Element | null;
    const stillOnToken = to && typeof to.closest === "function" && to.closest(".txm-token") && this.body.contains(to);
    if (!stillOnToken) this.ctx.store.set({ hover: -1 });
  }

  private onClick(e: Event): void {
    const t = this.tokenOf(e);
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

  /** One label per shown token; data-index is the token's position in its sequence. */
  private buildLabels(frame: Frame): void {
    const { queries, keys, crop } = frame;
    this.focused = null;
    this.tinted.clear();
    const make = (text: string, special: boolean, side: Side, i: number) => {
      const el = h("div", special ? "txm-token txm-special" : "txm-token", displayToken(text));
      el.dataset.side = side;
      el.dataset.index = String(i);
      el.dir = "auto";
      el.title = `${side} ${i}: ${text}`;
      return el;
    };
    clear(this.queryCol);
    clear(this.keyCol);
    this.queryEls = queries.text.map((t, i) => make(t, queries.special[i], "query", crop.rows[i]));
    this.keyEls = keys.text.map((t, i) => make(t, keys.special[i], "key", crop.cols[i]));
    this.queryCol.append(...this.queryEls);
    this.keyCol.append(...this.keyEls);
    const rows = Math.max(queries.text.length, keys.text.length);
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
    const layer = frame.layer;
    // Read layout before writing to the DOM, so a hover never forces a synchronous layout.
    // Rows are tokens (a pooled layer has fewer rows than tokens).
    const Q = frame.queries.text.length, K = frame.keys.text.length;
    const rows = Math.max(Q, K);
    if (!this.size) {
      this.size = {
        width: this.gap.clientWidth || 160,
        height: this.scroll.clientHeight || Math.min(this.maxHeight, rows * this.rowHeight),
      };
    }
    const { width, height: viewH } = this.size;
    let top = this.scroll.scrollTop;
    const focus = focusOf(state);
    // Where the focused token is shown (-1: filtered out by the pair filter).
    const at = focus.index < 0 ? -1 : (focus.side === "query" ? frame.crop.rowOf : frame.crop.colOf)[focus.index] ?? -1;
    // A token focused from elsewhere (matrix, Python) that is scrolled out of sight: bring it
    // into view, once per focus change (so the user can still scroll away from a pinned token).
    const focusKey = `${state.kind}/${state.pair}/${focus.side}/${focus.index}`;
    if (focusKey !== this.lastFocus) {
      this.lastFocus = focusKey;
      const rowH = this.rowHeight;
      const y = at * rowH;
      // Only rows entirely out of sight: a label hovered here is always partly visible, and
      // scrolling under the pointer would move the hover to another row.
      if (at >= 0 && (y + rowH <= top || y >= top + viewH)) {
        top = Math.max(0, Math.min(rows * rowH - viewH, y + rowH / 2 - viewH / 2));
        this.scroll.scrollTop = top;
      }
    }
    this.markFocus(at, focus.side);
    const pooled = (frame.pool ?? 1) > 1;
    this.tint(state, frame, pooled ? -1 : at, focus.side);

    const { ctx } = prepareCanvas(this.canvas, width, viewH);
    if (ctx) {
      ctx.clearRect(0, 0, width, viewH);
      if (pooled) this.drawSparse(ctx, state, frame, at, focus.side, top, width, viewH);
      else if (at >= 0) this.drawFocus(ctx, state, frame, at, focus.side, top, width, viewH);
      else if (focus.index < 0) this.drawOverview(ctx, state, frame, top, width, viewH);
    }
    this.element.dataset.focusToken = String(focus.index);
    this.element.dataset.drawnLayer = String(layer.layer);
    this.element.dataset.focusSide = focus.side;
    this.drawn = true;
  }

  private markFocus(index: number, side: Side): void {
    const el = index >= 0 ? (side === "query" ? this.queryEls : this.keyEls)[index] ?? null : null;
    if (el === this.focused) return;
    this.focused?.classList.remove("txm-focus");
    el?.classList.add("txm-focus");
    this.focused = el;
  }

  /** Shade the other column's labels by the mean weight of the selected heads (`index`: shown row). */
  private tint(state: Readonly<Selection>, frame: Frame, index: number, side: Side): void {
    const next = new Map<HTMLElement, number>();
    const mask = frame.mask;
    if (index >= 0 && state.heads.length > 0) {
      const [, Q, K] = frame.layer.shape;
      const mean = this.ctx.matrices.get(frame.layer, state.heads, -1);
      if (side === "query" && index < Q) {
        for (let j = 0; j < K; j++) {
          const w = mean[index * K + j];
          if (w >= 0.02 && (!mask || mask[index * K + j])) next.set(this.keyEls[j], w);
        }
      } else if (side === "key" && index < K) {
        for (let i = 0; i < Q; i++) {
          const w = mean[i * K + index];
          if (w >= 0.02 && (!mask || mask[i * K + index])) next.set(this.queryEls[i], w);
        }
      }
    }
    for (const el of this.tinted) {
      if (next.has(el)) continue;
      el.style.removeProperty("--txm-weight");
      el.classList.remove("txm-tinted");
    }
    for (const [el, w] of next) {
      el.style.setProperty("--txm-weight", String(Math.round(w * 1000) / 1000));
      el.classList.add("txm-tinted");
    }
    this.tinted = new Set(next.keys());
  }

  /**
   * A layer here only as a pooled overview (a long input): the focused token's arcs from its
   * exact row (fetched on hover) or its top-k weights; with no focus, every visible query's top
   * weights of the selected heads.
   */
  private drawSparse(
    ctx: CanvasRenderingContext2D, state: Readonly<Selection>, frame: Frame,
    index: number, side: Side, top: number, width: number, viewH: number,
  ): void {
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
      this.drawFocus(ctx, state, frame, index, side, top, width, viewH, visit, frame.info.heads);
      return;
    }
    if (!topk || state.heads.length === 0) return;
    this.element.dataset.arcSource = "topk";
    const [H, , k] = topk.shape;
    const rowH = this.rowHeight;
    const [first, last] = visibleRows(top, viewH, rowH, Q);
    const levels: Segment[][] = [[], [], [], []];
    for (const head of state.heads) {
      if (head >= H) continue;
      for (let i = first; i <= last; i++) {
        const base = (head * Q + i) * k;
        for (let r = 0; r < k; r++) {
          const w = topk.data[base + r];
          if (!(w >= 0.08)) break; // largest first
          levels[levelOf(w)].push({ y1: rowCenter(i, rowH) - top, y2: rowCenter(topk.index[base + r], rowH) - top });
        }
      }
    }
    strokeLevels(ctx, levels, width, this.ctx.theme.dark);
  }

  private drawFocus(
    ctx: CanvasRenderingContext2D, state: Readonly<Selection>, frame: Frame,
    index: number, side: Side, top: number, width: number, viewH: number,
    sparse?: Visitor, headCount?: number,
  ): void {
    const layer: LayerData = frame.layer;
    const [, Ql, Kl] = layer.shape;
    const H = headCount ?? layer.shape[0];
    const Q = sparse ? frame.queries.text.length : Ql, K = sparse ? frame.keys.text.length : Kl;
    if ((side === "query" && index >= Q) || (side === "key" && index >= K)) return;
    const rowH = this.rowHeight;
    const dark = this.ctx.theme.dark;
    const heads = state.heads.filter((x) => x < H);
    const buckets: Segment[][][] = heads.map(() => Array.from({ length: BUCKETS }, () => []));
    const fixedY = rowCenter(index, rowH) - top;
    const others = side === "query" ? K : Q;
    const data = layer.data;
    const mask = frame.mask;
    const visit: Visitor = sparse ?? ((head, cb) => {
      const base = head * Q * K;
      for (let o = 0; o < others; o++) {
        const cell = side === "query" ? index * K + o : o * K + index;
        if (mask && !mask[cell]) continue;
        cb(o, data[base + cell]);
      }
    });
    heads.forEach((head, slot) => {
      const off = headOffset(slot, heads.length, rowH);
      visit(head, (o, w) => {
        if (!(w >= this.threshold)) return;
        const y = rowCenter(o, rowH) - top + off;
        const yf = fixedY + off;
        if ((y < -rowH && yf < -rowH) || (y > viewH + rowH && yf > viewH + rowH)) return;
        const b = Math.min(BUCKETS - 1, Math.floor(Math.sqrt(Math.min(1, w)) * BUCKETS));
        buckets[slot][b].push(side === "query" ? { y1: yf, y2: y } : { y1: y, y2: yf });
      });
    });
    const x1 = 1, x2 = width - 1;  // the columns strokeArcs joins, for the end marker
    ctx.lineCap = "round";
    for (let b = 0; b < BUCKETS; b++) {
      const rep = ((b + 0.5) / BUCKETS) ** 2;
      const style = arcStyle(rep);
      heads.forEach((head, slot) => {
        const segs = buckets[slot][b];
        if (segs.length === 0) return;
        ctx.strokeStyle = cssColor(headColor(head, H, dark));
        ctx.globalAlpha = style.alpha;
        ctx.lineWidth = style.width;
        strokeArcs(ctx, segs, width);
      });
    }
    // End markers at the focused token.
    ctx.globalAlpha = 1;
    ctx.fillStyle = dark ? "#e8e8e8" : "#333";
    ctx.beginPath();
    ctx.arc(side === "query" ? x1 + 2 : x2 - 2, fixedY, 2.5, 0, Math.PI * 2);
    ctx.fill();
  }

  private drawOverview(
    ctx: CanvasRenderingContext2D, state: Readonly<Selection>, frame: Frame,
    top: number, width: number, viewH: number,
  ): void {
    if (state.heads.length === 0) return;
    const [, Q, K] = frame.layer.shape;
    const rowH = this.rowHeight;
    const mask = frame.mask;
    const mean = this.ctx.matrices.get(frame.layer, state.heads, -1);
    const [first, last] = visibleRows(top, viewH, rowH, Q);
    const levels: Segment[][] = [[], [], [], []];
    for (let i = first; i <= last; i++) {
      for (let j = 0; j < K; j++) {
        const cell = i * K + j;
        if (mask && !mask[cell]) continue;
        const w = mean[cell];
        if (!(w >= 0.08)) continue;
        levels[levelOf(w)].push({ y1: rowCenter(i, rowH) - top, y2: rowCenter(j, rowH) - top });
      }
    }
    strokeLevels(ctx, levels, width, this.ctx.theme.dark);
  }

  destroy(): void {
    if (this.frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(this.frame);
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
