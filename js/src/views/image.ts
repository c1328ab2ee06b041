/**
 * Image panel, for vision models (ViT-style, patches as tokens): the picture the model saw with
 * the attention of one query token drawn over it as a heat overlay, one cell per patch. The query
 * is the focused token (hovered or clicked in any view), else [CLS]; clicking a patch pins it, so
 * the arcs and the matrix follow. Uses the selected layer and head (or the mean of the selected
 * heads). Present only when the trace has an image (`meta.image`).
 */

import { h, listenGuarded, prepareCanvas } from "../dom";
import { formatWeight } from "../layout";
import type { LayerData } from "../source";
import { focusOf, type Selection } from "../state";
import { kindInfo, type ImageInfo } from "../wire";
import { touches, type Changes, type PanelView, type ViewContext } from "./view";

/** Largest side of the drawn picture in CSS pixels. */
const MAX_SIDE = 360;
/** Overlay opacity (0..255) of the patch with the largest weight; a zero weight is transparent. */
export const MAX_ALPHA = 160;
/** Overlay colour: warm, visible over most photographs. */
const HEAT: [number, number, number] = [255, 72, 0];

/** The query token whose attention is drawn: the focused token on the query side, else [CLS] (or patch 0). */
export function queryToken(s: Readonly<Selection>, selfKind: boolean, tokens: number): number {
  const f = focusOf(s);
  if (f.index >= 0 && f.index < tokens && (f.side === "query" || selfKind)) return f.index;
  return 0;
}

/**
 * The weights of `query` on each patch, row by row: row `query` of the (queries x keys) `matrix`,
 * keys first .. first + rows*cols - 1. Non-finite values read as 0.
 */
export function patchWeights(matrix: Float32Array, keys: number, query: number, image: Pick<ImageInfo, "rows" | "cols" | "first">): Float32Array {
  const n = image.rows * image.cols;
  const out = new Float32Array(n);
  const base = query * keys + image.first;
  for (let i = 0; i < n; i++) {
    const v = matrix[base + i];
    out[i] = Number.isFinite(v) && v > 0 ? v : 0;
  }
  return out;
}

/**
 * RGBA pixels (one per patch, rows x cols) of the heat overlay: opacity proportional to the weight
 * relative to the largest patch weight (that patch gets MAX_ALPHA), so a query that attends mostly
 * to [CLS] still shows where its remaining attention goes. Returns the pixels and that largest weight.
 */
export function heatPixels(weights: Float32Array): { pixels: Uint8ClampedArray; max: number } {
  let max = 0;
  for (const w of weights) if (w > max) max = w;
  const pixels = new Uint8ClampedArray(weights.length * 4);
  for (let i = 0; i < weights.length; i++) {
    pixels[i * 4] = HEAT[0];
    pixels[i * 4 + 1] = HEAT[1];
    pixels[i * 4 + 2] = HEAT[2];
    pixels[i * 4 + 3] = max > 0 ? Math.round((weights[i] / max) * MAX_ALPHA) : 0;
  }
  return { pixels, max };
}

/** The patch (row-major index) under CSS point (x, y) of a picture drawn `width` x `height`, or -1. */
export function patchAt(x: number, y: number, width: number, height: number, rows: number, cols: number): number {
  if (!(x >= 0 && y >= 0 && x < width && y < height)) return -1;
  const r = Math.min(rows - 1, Math.floor((y / height) * rows));
  const c = Math.min(cols - 1, Math.floor((x / width) * cols));
  return r * cols + c;
}

/** Drawn size of a `width` x `height` picture within `side` CSS pixels, keeping its aspect. */
export function fitSize(width: number, height: number, side: number): [number, number] {
  const scale = side / Math.max(width, height, 1);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/** Decode PNG bytes into something a canvas draws, or null where the browser cannot (jsdom). */
async function decodePicture(png: Uint8Array): Promise<CanvasImageSource | null> {
  if (typeof Blob === "undefined" || typeof createImageBitmap !== "function") return null;
  const copy = new Uint8Array(png.byteLength);
  copy.set(png);
  return createImageBitmap(new Blob([copy.buffer], { type: "image/png" }));
}

export class ImageView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Image";
  private readonly image: ImageInfo;
  private readonly caption: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly tip: HTMLElement;
  private readonly cleanups: (() => void)[] = [];
  private picture: CanvasImageSource | null = null;
  private pictureFailed = false;
  private weights: Float32Array | null = null;
  private query = 0;
  private size: [number, number];
  private last: Readonly<Selection> | null = null;

  constructor(private readonly ctx: ViewContext) {
    const image = ctx.source.meta.image;
    if (!image) throw new Error("tx_magic: the image view needs a trace with an image");
    this.image = image;
    this.element = h("div", "txm-panel txm-image");
    this.element.dataset.view = "image";
    const header = h("div", "txm-view-header");
    this.caption = h("span", "txm-hint", "");
    header.append(h("span", "txm-view-title", "Attention over the image"), this.caption);
    this.canvas = h("canvas", "txm-image-canvas");
    this.canvas.setAttribute("role", "img");
    this.tip = h("div", "txm-hint txm-image-tip", "click a patch to see where it looks; click it again for [CLS]");
    this.element.append(header, this.canvas, this.tip);
    this.size = fitSize(image.width, image.height, MAX_SIDE);
    this.cleanups.push(
      listenGuarded(this.canvas, "click", (e) => this.onClick(e as MouseEvent), ctx.report),
      listenGuarded(this.canvas, "mousemove", (e) => this.onMove(e as MouseEvent), ctx.report),
    );
    decodePicture(image.png).then(
      (pic) => {
        this.picture = pic;
        this.pictureFailed = pic === null;
        if (this.last) this.draw();
      },
      (err: unknown) => {
        this.pictureFailed = true;
        ctx.report(err);
      },
    );
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (!touches(changes, "kind", "layer", "heads", "head", "hover", "hoverSide", "pinned", "pinnedSide")) return;
    this.last = s;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const tokens = this.ctx.source.meta.sequences[info.keys].text;
    const layer: LayerData | undefined = this.ctx.source.peekLayer(s.kind, s.layer);
    if (info.keys !== this.image.sequence || !layer || (layer.pool ?? 1) !== 1) {
      this.weights = null;
      this.caption.textContent = layer ? "this attention is not over the image's patches" : `loading layer ${s.layer}…`;
      this.draw();
      return;
    }
    this.query = queryToken(s, info.queries === info.keys, layer.shape[1]);
    const matrix = this.ctx.matrices.get(layer, s.heads, s.head);
    this.weights = patchWeights(matrix, layer.shape[2], this.query, this.image);
    const heads = s.head >= 0 ? `head ${s.head}` : `mean of ${s.heads.length} heads`;
    const { max } = heatPixels(this.weights);
    this.caption.textContent = `from ${tokens[this.query] ?? this.query} · layer ${s.layer} · ${heads} · ` +
      `strongest patch ${formatWeight(max)}`;
    this.element.dataset.query = String(this.query);
    this.draw();
  }

  private draw(): void {
    const [w, hgt] = this.size;
    const { ctx } = prepareCanvas(this.canvas, w, hgt);
    this.canvas.setAttribute("aria-label", this.caption.textContent ?? "");
    if (!ctx) return;
    ctx.clearRect(0, 0, w, hgt);
    if (this.picture) ctx.drawImage(this.picture, 0, 0, w, hgt);
    else if (this.pictureFailed) {
      ctx.fillStyle = "#888";
      ctx.fillRect(0, 0, w, hgt);
    }
    if (!this.weights) return;
    const { rows, cols, first } = this.image;
    const { pixels } = heatPixels(this.weights);
    const cellW = w / cols, cellH = hgt / rows;
    for (let i = 0; i < rows * cols; i++) {
      const a = pixels[i * 4 + 3];
      if (a === 0) continue;
      ctx.fillStyle = `rgba(${pixels[i * 4]}, ${pixels[i * 4 + 1]}, ${pixels[i * 4 + 2]}, ${a / 255})`;
      ctx.fillRect((i % cols) * cellW, Math.floor(i / cols) * cellH, cellW, cellH);
    }
    const patch = this.query - first;
    if (patch >= 0 && patch < rows * cols) {
      ctx.strokeStyle = this.ctx.theme.dark ? "#fff" : "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect((patch % cols) * cellW + 1, Math.floor(patch / cols) * cellH + 1, cellW - 2, cellH - 2);
    }
  }

  private patchOf(e: MouseEvent): number {
    const rect = this.canvas.getBoundingClientRect();
    const [w, hgt] = this.size;
    const x = ((e.clientX - rect.left) / (rect.width || w)) * w, y = ((e.clientY - rect.top) / (rect.height || hgt)) * hgt;
    return patchAt(x, y, w, hgt, this.image.rows, this.image.cols);
  }

  private onMove(e: MouseEvent): void {
    const patch = this.patchOf(e);
    if (patch < 0 || !this.weights) return;
    const r = Math.floor(patch / this.image.cols), c = patch % this.image.cols;
    this.tip.textContent = `patch ${r},${c}: ${formatWeight(this.weights[patch])} of this query's attention`;
  }

  private onClick(e: MouseEvent): void {
    const patch = this.patchOf(e);
    if (patch < 0) return;
    const token = this.image.first + patch;
    const s = this.ctx.store.get();
    const again = s.pinned === token && s.pinnedSide === "query";
    this.ctx.store.set({ pinned: again ? -1 : token, pinnedSide: "query" });
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
