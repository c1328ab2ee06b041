/**
 * Layer evolution: what the matrix shows (one head, the mean of the selected heads, or their
 * rollout) through every layer, side by side. Click a layer to select it.
 */

import { h } from "../dom";
import { matrixFor } from "../shown";
import type { Selection } from "../state";
import { cachedPool, poolMatrix, type Pooled } from "../thumbnails";
import { kindInfo } from "../wire";
import { metaThumbnail, POOL } from "./grid";
import { Multiples, stripLayout, type Panel } from "./multiples";
import { Preview } from "./preview";
import { missingLayersNote } from "./tabs";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

export class LayersView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Layers";
  private readonly heading: HTMLElement;
  private readonly multiples: Multiples;
  private readonly preview = new Preview();
  private drawnKey = "";
  private readonly note: HTMLElement;

  constructor(private readonly ctx: ViewContext) {
    this.element = h("div", "txm-panel txm-layers");
    this.element.dataset.view = "layers";
    const header = h("div", "txm-view-header");
    this.heading = h("span", "txm-view-title", "");
    this.note = h("span", "txm-hint", "");
    header.append(this.heading, this.note);
    this.multiples = new Multiples((key, e) => this.onHover(key, e), (key) => this.ctx.store.set({ layer: key }));
    this.element.append(header, this.multiples.element, this.preview.element);
  }

  /** Every layer, except for a long input captured reduced: it draws from the thumbnails then. */
  needsAllLayers(s: Readonly<Selection>): boolean {
    return !kindInfo(this.ctx.source.meta, s.kind).streamed;
  }

  /** What the panels show: the matrix's choice of head or aggregate. */
  private describe(s: Readonly<Selection>): string {
    if (s.head >= 0) return `Head ${s.head} through every layer`;
    const n = s.heads.length;
    if (kindInfo(this.ctx.source.meta, s.kind).streamed) return `Mean of ${n} heads' thumbnails in every layer`;
    return s.aggregate === "rollout" ? `Rollout of ${n} heads through each layer` : `Mean of ${n} heads in every layer`;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const width = this.element.clientWidth || 640;
    const have = this.ctx.derived.progress(s.kind)[0];
    const key = [s.kind, s.pair, s.weighting, s.head, s.aggregate, s.heads.join(","), this.ctx.theme.dark, width, have].join("|");
    if (key !== this.drawnKey) {
      this.drawnKey = key;
      const layout = stripLayout(info.layers, width, 56, 132);
      const panels: Panel[] = Array.from({ length: info.layers }, (_, l) => ({
        row: Math.floor(l / layout.cols), col: l % layout.cols, pooled: this.thumbnail(s, l), caption: `layer ${l}`, key: l,
      }));
      this.multiples.draw(panels, layout, this.ctx.theme.dark, this.describe(s));
      this.heading.textContent = this.describe(s);
      this.note.replaceChildren(info.streamed
        ? "from each head's 32 × 32 thumbnail (max over its tiles) · click a layer to select it"
        : missingLayersNote(this.ctx, s.kind) ?? "click a layer to select it");
    }
    this.multiples.mark([s.layer]);
  }

  private thumbnail(s: Readonly<Selection>, l: number, size = POOL * 2): Pooled | null {
    const info = kindInfo(this.ctx.source.meta, s.kind);
    if (info.streamed) return this.fromThumbnails(s, l);
    const layer = this.ctx.source.peekLayer(s.kind, l);
    if (!layer) return null;
    const frame = this.ctx.frames.frame(kindInfo(this.ctx.source.meta, s.kind), layer, s.pair);
    const matrix = matrixFor(this.ctx, { ...s, layer: l }, frame);
    if (!matrix) return null;
    const [, q, k] = frame.layer.shape;
    return cachedPool(matrix, String(size), () => poolMatrix(matrix, q, k, size, frame.mask));
  }

  /** A streamed kind's layer from the metadata thumbnails: one head's, or the mean of the selected heads'. */
  private fromThumbnails(s: Readonly<Selection>, l: number): Pooled | null {
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const q = this.ctx.source.meta.sequences[info.queries].text.length;
    const k = this.ctx.source.meta.sequences[info.keys].text.length;
    const heads = s.head >= 0 ? [s.head] : s.heads;
    const each = heads.map((x) => metaThumbnail(info, l, x, q, k)).filter((p): p is Pooled => p !== null);
    if (each.length === 0) return null;
    if (each.length === 1) return each[0];
    const data = new Float32Array(each[0].data.length);
    for (let i = 0; i < data.length; i++) {
      let sum = 0;
      let n = 0;
      for (const p of each) {
        const v = p.data[i];
        if (!Number.isNaN(v)) {
          sum += v;
          n++;
        }
      }
      data[i] = n ? sum / n : NaN;
    }
    return { ...each[0], data };
  }

  private onHover(l: number | null, e: MouseEvent): void {
    if (l === null) {
      this.preview.hide();
      return;
    }
    const s = this.ctx.store.get();
    this.preview.show(this.element, e, this.thumbnail(s, l, 128), [`layer ${l}`, this.describe(s)], this.ctx.theme.dark);
  }

  destroy(): void {
    this.multiples.destroy();
    this.element.remove();
  }
}
