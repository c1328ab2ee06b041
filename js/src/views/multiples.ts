/**
 * Small multiples on one canvas: a grid of thumbnails (pooled matrices) with axis labels,
 * captions and badges, painted in one ImageData pass; an overlay canvas outlines the selected
 * and hovered panels, so hovering never repaints the thumbnails. The overview grid, head
 * comparison and layer evolution views are built on it.
 */

import { h, prepareCanvas } from "../dom";
import { paintPooled, palette, type Pooled } from "../thumbnails";

export interface Panel {
  row: number;
  col: number;
  /** The thumbnail; null draws an empty box (data still loading). */
  pooled: Pooled | null;
  /** Text above the panel (needs `caption` room in the layout). */
  caption?: string;
  /** A short mark in the panel's corner (a head type's letter). */
  badge?: string;
  /** What the panel stands for (a head, a layer, a layer*heads+head); given back on hover and click. */
  key: number;
}

export interface MultiplesLayout {
  rows: number;
  cols: number;
  /** Side of one thumbnail in CSS pixels. */
  cell: number;
  gap: number;
  /** Room above each panel for its caption (0: none). */
  caption: number;
  rowLabels?: string[];
  colLabels?: string[];
}

const LEFT_LABELS = 26;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
const TOP_LABELS = 15;
/** Room around the panels for the selection outline. */
const PAD = 3;

/** Where panel (row, col) sits in CSS pixels, for a layout. */
export function panelBox(l: MultiplesLayout, row: number, col: number): { x: number; y: number } {
  const left = l.rowLabels ? LEFT_LABELS : PAD, top = l.colLabels ? TOP_LABELS : PAD;
  return { x: left + col * (l.cell + l.gap), y: top + row * (l.cell + l.gap + l.caption) + l.caption };
}

/** Total CSS size of a layout. */
export function layoutSize(l: MultiplesLayout): { width: number; height: number } {
  const end = panelBox(l, l.rows, l.cols);
  return { width: Math.max(1, end.x - l.gap + PAD), height: Math.max(1, end.y - l.caption - l.gap + PAD) };
}

/** The (row, col) under a CSS point, or null between or outside panels. */
export function panelAt(l: MultiplesLayout, x: number, y: number): { row: number; col: number } | null {
  const origin = panelBox(l, 0, 0);
  const col = Math.floor((x - origin.x) / (l.cell + l.gap));
  const row = Math.floor((y - origin.y + l.caption) / (l.cell + l.gap + l.caption));
  if (row < 0 || col < 0 || row >= l.rows || col >= l.cols) return null;
  const box = panelBox(l, row, col);
  return x >= box.x && x < box.x + l.cell && y >= box.y && y < box.y + l.cell ? { row, col } : null;
}

/** Width and height of a thumbnail in a `cell`-sized square, keeping the matrix's aspect. */
function boxOf(pooled: Pooled, cell: number): [number, number] {
  const aspect = pooled.aspect;
  return aspect > 1 ? [Math.max(1, cell / aspect), cell] : [cell, Math.max(1, cell * aspect)];
}

/**
 * Paint every panel's thumbnail into `px` (a device-pixel buffer `stride` wide) at device scale
 * `scale`. Pure pixel work: the hot path, benchmarked at 30 x 9 and 32 x 32 heads.
 */
export function paintPanels(px: Uint32Array, stride: number, scale: number, panels: readonly Panel[], l: MultiplesLayout, dark: boolean): void {
  const colors = palette(dark);
  for (const p of panels) {
    if (!p.pooled) continue;
    const { x, y } = panelBox(l, p.row, p.col);
    const [bw, bh] = boxOf(p.pooled, l.cell);
    const x0 = Math.round(x * scale), y0 = Math.round(y * scale);
    const w = Math.round((x + bw) * scale) - x0, hgt = Math.round((y + bh) * scale) - y0;
    paintPooled(px, stride, x0, y0, w, hgt, p.pooled, colors);
  }
}

export class Multiples {
  readonly element: HTMLElement;
  private readonly base: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private layout: MultiplesLayout | null = null;
  private byPos = new Map<string, Panel>();
  private selected: number[] = [];
  private hovered: number | null = null;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly onHover: (key: number | null, e: MouseEvent) => void,
    private readonly onClick: (key: number, e: MouseEvent) => void,
  ) {
    this.element = h("div", "txm-multiples");
    this.base = h("canvas", "txm-multiples-base");
    this.base.setAttribute("role", "img");
    this.overlay = h("canvas", "txm-multiples-overlay");
    this.element.append(this.base, this.overlay);
    const move = (e: Event) => this.hover(this.keyAt(e as MouseEvent), e as MouseEvent);
    const leave = (e: Event) => this.hover(null, e as MouseEvent);
    const click = (e: Event) => {
      const key = this.keyAt(e as MouseEvent);
      if (key !== null) this.onClick(key, e as MouseEvent);
    };
    for (const [type, fn] of [["mousemove", move], ["mouseleave", leave], ["click", click]] as const) {
      this.overlay.addEventListener(type, fn);
      this.cleanups.push(() => this.overlay.removeEventListener(type, fn));
    }
  }

  private keyAt(e: MouseEvent): number | null {
    if (!this.layout) return null;
    const rect = this.overlay.getBoundingClientRect();
    const at = panelAt(this.layout, e.clientX - rect.left, e.clientY - rect.top);
    return at ? this.byPos.get(`${at.row},${at.col}`)?.key ?? null : null;
  }

  private hover(key: number | null, e: MouseEvent): void {
    if (key !== this.hovered) {
      this.hovered = key;
      this.drawOverlay();
    }
    this.onHover(key, e);
  }

  /** Paint all panels; returns the milliseconds the paint took. */
  draw(panels: readonly Panel[], layout: MultiplesLayout, dark: boolean, label: string): number {
    const t0 = performance.now();
    this.layout = layout;
    this.byPos = new Map(panels.map((p) => [`${p.row},${p.col}`, p]));
    this.base.setAttribute("aria-label", label);
    // Where panel (0, 0) starts and how far apart panels are, for tests that click them.
    const origin = panelBox(layout, 0, 0);
    Object.assign(this.element.dataset, {
      x0: String(origin.x), y0: String(origin.y), stepX: String(layout.cell + layout.gap),
      stepY: String(layout.cell + layout.gap + layout.caption), cell: String(layout.cell),
    });
    const { width, height } = layoutSize(layout);
    const { ctx, scale } = prepareCanvas(this.base, width, height);
    if (ctx && typeof ctx.createImageData === "function") {
      const img = ctx.createImageData(this.base.width, this.base.height);
      const px = new Uint32Array(img.data.buffer, img.data.byteOffset, this.base.width * this.base.height);
      paintPanels(px, this.base.width, scale, panels, layout, dark);
      ctx.putImageData(img, 0, 0);
      this.drawText(ctx, panels, layout, dark);
    }
    this.drawOverlay();
    return performance.now() - t0;
  }

  private drawText(ctx: CanvasRenderingContext2D, panels: readonly Panel[], l: MultiplesLayout, dark: boolean): void {
    const ink = dark ? "#c9ccd3" : "#4b5260";
    ctx.font = `10px ${FONT}`;
    ctx.fillStyle = ink;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    l.rowLabels?.forEach((text, row) => {
      const { y } = panelBox(l, row, 0);
      ctx.fillText(text, LEFT_LABELS - 5, y + l.cell / 2);
    });
    ctx.textAlign = "center";
    l.colLabels?.forEach((text, col) => {
      const { x } = panelBox(l, 0, col);
      ctx.fillText(text, x + l.cell / 2, TOP_LABELS / 2);
    });
    ctx.textAlign = "left";
    const empty = panels.filter((p) => !p.pooled);
    if (empty.length > 0) {
      ctx.strokeStyle = dark ? "#3d4048" : "#d8dee4";
      ctx.beginPath();
      for (const p of empty) {
        const { x, y } = panelBox(l, p.row, p.col);
        ctx.rect(x + 0.5, y + 0.5, l.cell - 1, l.cell - 1);
      }
      ctx.stroke();
    }
    if (l.caption > 0) {
      for (const p of panels) {
        if (!p.caption) continue;
        const { x, y } = panelBox(l, p.row, p.col);
        ctx.fillText(p.caption, x, y - l.caption / 2);
      }
    }
    // Badges last, in two batched passes (backgrounds, then letters): fast at 1024 heads.
    const badged = l.cell >= 22 ? panels.filter((p): p is Panel & { badge: string } => Boolean(p.badge)) : [];
    if (badged.length === 0) return;
    const size = l.cell >= 40 ? 13 : 11;
    ctx.fillStyle = dark ? "rgba(17, 20, 24, 0.8)" : "rgba(255, 255, 255, 0.85)";
    ctx.beginPath();
    for (const p of badged) {
      const { x, y } = panelBox(l, p.row, p.col);
      ctx.rect(x + l.cell - size, y, size, size);
    }
    ctx.fill();
    ctx.fillStyle = dark ? "#f6a95c" : "#b35806";
    ctx.textAlign = "center";
    ctx.font = `600 ${size - 3}px ${FONT}`;
    for (const p of badged) {
      const { x, y } = panelBox(l, p.row, p.col);
      ctx.fillText(p.badge, x + l.cell - size / 2, y + size / 2 + 0.5);
    }
  }

  /** Outline the panels with these keys as selected. */
  mark(selected: number[]): void {
    this.selected = selected;
    this.drawOverlay();
  }

  private drawOverlay(): void {
    const l = this.layout;
    if (!l) return;
    const { width, height } = layoutSize(l);
    const { ctx } = prepareCanvas(this.overlay, width, height);
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    const outline = (key: number, color: string, lineWidth: number) => {
      for (const p of this.byPos.values()) {
        if (p.key !== key) continue;
        const { x, y } = panelBox(l, p.row, p.col);
        ctx.strokeStyle = color;
        ctx.lineWidth = lineWidth;
        ctx.strokeRect(x - 1, y - 1, l.cell + 2, l.cell + 2);
      }
    };
    for (const key of this.selected) outline(key, "#f28e2b", 2.5);
    if (this.hovered !== null) outline(this.hovered, "rgba(127, 127, 127, 0.9)", 1.5);
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}

/** `count` panels in rows that fill `width`: each between `minCell` and `maxCell` pixels, captions above. */
export function stripLayout(count: number, width: number, minCell = 64, maxCell = 150, gap = 8): MultiplesLayout {
  const cols = Math.max(1, Math.min(count, Math.floor((width + gap) / (minCell + gap))));
  const cell = Math.max(minCell, Math.min(maxCell, Math.floor((width - (cols - 1) * gap) / cols)));
  return { rows: Math.ceil(count / cols), cols, cell, gap, caption: 16 };
}
