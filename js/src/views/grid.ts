/**
 * Overview grid: every layer x head of the kind as a small thumbnail on one canvas (bertviz's
 * model view, CircuitsVis's heads). Click selects the layer and head, hover previews a head
 * with its statistics, letters mark head types. Layers run down the rows, or across the
 * columns when a model has many more layers than heads (30 x 9), so the grid stays compact.
 */

import { headMatrix } from "../aggregate";
import { clear, h } from "../dom";
import type { LayerData } from "../source";
import type { Selection } from "../state";
import type { HeadStats } from "../stats";
import { thumbnailFrom } from "../pooled";
import { cachedPool, poolMatrix, type Pooled } from "../thumbnails";
import { kindInfo, type KindInfo, type Thumbnails } from "../wire";
import { badgeOf, statLines, typeLegend } from "./headtypes";
import { Multiples, type MultiplesLayout, type Panel } from "./multiples";
import { Preview } from "./preview";
import { isUserStat, statNames, statOf, statValues, valuePanels } from "./statcolor";
import { missingLayersNote } from "./tabs";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

/** Pooled thumbnail side (cells), whatever the sequence length. */
export const POOL = 32;
const GAP = 3;

/** Thumbnail of one head of a (cropped) layer, cached with the layer. */
export function headThumbnail(layer: LayerData, head: number, mask: Uint8Array | null, size = POOL): Pooled {
  const [, q, k] = layer.shape;
  return cachedPool(layer, `${head}/${size}`, () => poolMatrix(headMatrix(layer, head), q, k, size, mask));
}

/** One head's thumbnail from the metadata (every layer, no fetch), cached with the kind. */
export function metaThumbnail(info: KindInfo, layer: number, head: number, q: number, k: number): Pooled | null {
  const t = info.thumbnails;
  if (!t) return null;
  return cachedPool(info, `meta/${layer}/${head}`, () => thumbnailFrom(info, t, layer, head, q, k));
}

/** One head's thumbnail from a kind's value-weighted thumbnails (values.ts), cached with them. */
export function valueThumbnail(info: KindInfo, t: Thumbnails, layer: number, head: number, q: number, k: number): Pooled {
  return cachedPool(t, `${layer}/${head}`, () => thumbnailFrom(info, t, layer, head, q, k));
}

/** Grid geometry for `layers` x `heads` in `width` CSS pixels (layers down, or across when transposed). */
export function gridLayout(layers: number, heads: number, width: number): MultiplesLayout & { transposed: boolean } {
  const transposed = layers > heads * 1.5;
  const rows = transposed ? heads : layers, cols = transposed ? layers : heads;
  const cell = Math.max(12, Math.min(56, Math.floor((width - 30) / cols) - GAP));
  const every = cell >= 20 ? 1 : 2;
  const label = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => (i % every === 0 ? `${prefix}${i}` : ""));
  return {
    rows, cols, cell, gap: GAP, caption: 0, transposed,
    rowLabels: label(rows, transposed ? "h" : "L"),
    colLabels: label(cols, transposed ? "L" : "h"),
  };
}

export class GridView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Overview";
  private readonly note: HTMLElement;
  private readonly legendHost: HTMLElement;
  private readonly multiples: Multiples;
  private readonly preview = new Preview();
  private drawnKey = "";
  private heads = 0;
  private stats: HeadStats[] | null = null;
  private panels = new Map<number, Panel>();
  /** "attention" (thumbnails), or the statistic that colours the heads. */
  private readonly colourSelect: HTMLSelectElement;
  /** Milliseconds of the last full paint (pooling + pixels), for benchmarks. */
  lastPaintMs = 0;

  constructor(private readonly ctx: ViewContext) {
    this.element = h("div", "txm-panel txm-grid");
    this.element.dataset.view = "grid";
    const header = h("div", "txm-view-header");
    this.note = h("span", "txm-hint", "");
    this.colourSelect = h("select", "txm-grid-colour");
    this.colourSelect.setAttribute("aria-label", "what colours the heads");
    this.colourSelect.append(Object.assign(h("option", "", "attention"), { value: "attention" }));
    this.colourSelect.addEventListener("change", () => {
      this.drawnKey = "";
      if (this.needsAllLayers(this.ctx.store.get())) this.ctx.loadAll(this.ctx.store.get().kind);
      this.update(this.ctx.store.get(), "all");
    });
    header.append(h("span", "txm-view-title", "All layers × heads"), this.colourSelect, this.note);
    this.multiples = new Multiples((key, e) => this.onHover(key, e), (key, e) => this.onClick(key, e));
    this.legendHost = h("div", "");
    this.element.append(header, this.multiples.element, this.legendHost, this.preview.element);
  }

  /** With thumbnails in the metadata the grid draws at once, without any layer; a built-in statistic
   * colouring needs every layer (unless Python sent the statistics). */
  needsAllLayers(s: Readonly<Selection>): boolean {
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const colour = this.colourSelect.value;
    if (colour !== "attention" && !isUserStat(info, colour)) return !info.stats;
    return !this.thumbnails(s, info);
  }

  /** The thumbnails of what the selection weighs by: the weights' (in the metadata), or the value-weighted rows'. */
  private thumbnails(s: Readonly<Selection>, info: KindInfo): Thumbnails | undefined {
    return s.weighting === "value" ? this.ctx.values?.thumbnails(info) : info.thumbnails;
  }

  private thumbnailAt(s: Readonly<Selection>, info: KindInfo, layer: number, head: number, q: number, k: number): Pooled | null {
    const t = this.thumbnails(s, info);
    if (!t) return null;
    return s.weighting === "value" ? valueThumbnail(info, t, layer, head, q, k) : metaThumbnail(info, layer, head, q, k);
  }

  /** The colouring choices: attention thumbnails, then every statistic of the kind (user ones included). */
  private syncColours(info: KindInfo): void {
    const names = ["attention", ...statNames(info)];
    const have = Array.from(this.colourSelect.options, (o) => o.value);
    if (names.join("\u0000") === have.join("\u0000")) return;
    const chosen = this.colourSelect.value;
    this.colourSelect.replaceChildren(...names.map((n) => Object.assign(h("option", "", n), { value: n })));
    this.colourSelect.value = names.includes(chosen) ? chosen : "attention";
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    this.heads = info.heads;
    this.syncColours(info);
    const layers = this.ctx.derived.layers(s.kind);
    const width = this.element.clientWidth || 640;
    const key = [s.kind, s.pair, s.weighting, this.ctx.theme.dark, width, layers ? "all" : this.ctx.derived.progress(s.kind)[0],
      this.colourSelect.value].join("|");
    if (key !== this.drawnKey || changes === "all") {
      this.drawnKey = key;
      this.stats = this.ctx.derived.stats(s.kind);
      this.paint(s, width, layers !== null || this.thumbnails(s, info) !== undefined);
    }
    this.multiples.mark(s.head >= 0 ? [s.layer * info.heads + s.head] : []);
    this.element.dataset.selected = `${s.layer},${s.head}`;
  }

  private paint(s: Readonly<Selection>, width: number, complete: boolean): void {
    const t0 = performance.now();
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const layout = gridLayout(info.layers, info.heads, width);
    const q = this.ctx.source.meta.sequences[info.queries].text.length, k = this.ctx.source.meta.sequences[info.keys].text.length;
    this.panels.clear();
    const ablated = new Set(this.ctx.interventions?.ablatedKeys(s.kind, info.heads) ?? []);
    this.element.dataset.colour = this.colourSelect.value;
    if (this.colourSelect.value !== "attention") {
      const stat = this.colourSelect.value;
      const [panels, lo, hi] = valuePanels(statValues(this.ctx, info, stat), info, layout, (key) => badgeOf(this.stats?.[key]));
      for (const p of panels) this.panels.set(p.key, p);
      this.multiples.draw(panels, layout, this.ctx.theme.dark, `${stat} of every head`);
      this.note.textContent = Number.isFinite(lo) ? `${stat}: ${lo.toFixed(3)} (light) to ${hi.toFixed(3)} (dark) · click to select`
        : `${stat}: loading the layers…`;
      clear(this.legendHost);
      this.legendHost.append(typeLegend(this.stats));
      this.lastPaintMs = performance.now() - t0;
      return;
    }
    for (let l = 0; l < info.layers; l++) {
      // The meta thumbnails show the whole matrix: a layer that is here draws a pair filter's crop.
      const layer = s.pair === "all" && this.thumbnails(s, info) ? undefined : this.ctx.source.peekLayer(s.kind, l);
      const frame = layer ? this.ctx.frames.frame(info, layer, s.pair) : null;
      for (let x = 0; x < info.heads; x++) {
        const key = l * info.heads + x;
        this.panels.set(key, {
          row: layout.transposed ? x : l,
          col: layout.transposed ? l : x,
          pooled: frame ? headThumbnail(frame.layer, x, frame.mask) : this.thumbnailAt(s, info, l, x, q, k),
          badge: ablated.has(key) ? `×${badgeOf(this.stats?.[key]) ?? ""}` : badgeOf(this.stats?.[key]),
          key,
        });
      }
    }
    this.multiples.draw([...this.panels.values()], layout, this.ctx.theme.dark,
      `thumbnails of ${info.layers} layers x ${info.heads} heads`);
    this.lastPaintMs = performance.now() - t0;
    this.element.dataset.paintMs = this.lastPaintMs.toFixed(1);
    this.note.textContent = `${layout.transposed ? "layers across, heads down" : "layers down, heads across"} · click to select, hover to preview` +
      (this.ctx.interventions?.live ? " · Alt-click ablates (× marks ablated heads)" : "");
    const missing = complete ? null : missingLayersNote(this.ctx, s.kind);
    if (missing) this.note.replaceChildren(missing);
    clear(this.legendHost);
    this.legendHost.append(typeLegend(this.stats));
  }

  private onHover(key: number | null, e: MouseEvent): void {
    if (key === null) {
      this.preview.hide();
      return;
    }
    const layer = Math.floor(key / this.heads), head = key % this.heads;
    const s = this.ctx.store.get();
    const kind = kindInfo(this.ctx.source.meta, s.kind);
    const colour = this.colourSelect.value;
    const lines = [`layer ${layer} · head ${head}`, ...statLines(this.stats?.[key]),
      ...Object.keys(kind.user_stats ?? {}).map((n) => `${n} ${statOf(kind, this.stats, n, key).toFixed(3)}${n === colour ? " (shown)" : ""}`)];
    const data = this.ctx.source.peekLayer(s.kind, layer);
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const frame = data ? this.ctx.frames.frame(info, data, s.pair) : null;
    const q = this.ctx.source.meta.sequences[info.queries].text.length, k = this.ctx.source.meta.sequences[info.keys].text.length;
    const pooled = frame && (frame.pool ?? 1) === 1 ? headThumbnail(frame.layer, head, frame.mask, 128) : this.thumbnailAt(s, info, layer, head, q, k);
    this.preview.show(this.element, e, pooled, lines, this.ctx.theme.dark);
  }

  private onClick(key: number, e?: MouseEvent): void {
    const layer = Math.floor(key / this.heads), head = key % this.heads;
    if (e && (e.altKey || e.ctrlKey || e.metaKey) && this.ctx.interventions?.live) {
      this.ctx.interventions.toggle(this.ctx.store.get().kind, layer, head); // ablate / restore: the kernel reruns
      return;
    }
    this.ctx.store.set({ layer, head });
  }

  destroy(): void {
    this.multiples.destroy();
    this.element.remove();
  }
}
