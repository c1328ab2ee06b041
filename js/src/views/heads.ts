/**
 * Head comparison: every head of the selected layer side by side (as in the annotated
 * transformer's per-layer plots). Click a head to show it alone in the matrix (again: back to
 * the aggregate); hover for a larger preview and its statistics.
 */

import { h } from "../dom";
import type { Selection } from "../state";
import { kindInfo } from "../wire";
import { headThumbnail, POOL } from "./grid";
import { badgeOf, statLines } from "./headtypes";
import { Multiples, stripLayout, type Panel } from "./multiples";
import { Preview } from "./preview";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

export class HeadsView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Heads";
  private readonly heading: HTMLElement;
  private readonly multiples: Multiples;
  private readonly preview = new Preview();
  private drawnKey = "";

  constructor(private readonly ctx: ViewContext) {
    this.element = h("div", "txm-panel txm-heads");
    this.element.dataset.view = "heads";
    const header = h("div", "txm-view-header");
    this.heading = h("span", "txm-view-title", "");
    header.append(this.heading, h("span", "txm-hint", "click a head to show it alone in the matrix"));
    this.multiples = new Multiples((key, e) => this.onHover(key, e), (key) => this.onClick(key));
    this.element.append(header, this.multiples.element, this.preview.element);
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const layer = this.layerOf(s);
    if (!layer) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const frame = this.ctx.frames.frame(info, layer, s.pair);
    const stats = this.ctx.derived.stats(s.kind);
    const width = this.element.clientWidth || 640;
    const key = [s.kind, s.layer, s.pair, s.weighting, this.ctx.theme.dark, width, stats !== null].join("|");
    if (key !== this.drawnKey) {
      this.drawnKey = key;
      const layout = stripLayout(info.heads, width);
      const panels: Panel[] = Array.from({ length: info.heads }, (_, x) => ({
        row: Math.floor(x / layout.cols), col: x % layout.cols,
        pooled: headThumbnail(frame.layer, x, frame.mask, POOL * 2),
        caption: `head ${x}`,
        badge: badgeOf(stats?.[s.layer * info.heads + x]),
        key: x,
      }));
      this.multiples.draw(panels, layout, this.ctx.theme.dark, `every head of layer ${s.layer}`);
      this.heading.textContent = `Every head of layer ${s.layer}`;
    }
    this.multiples.mark(s.head >= 0 ? [s.head] : []);
  }

  private onHover(head: number | null, e: MouseEvent): void {
    if (head === null) {
      this.preview.hide();
      return;
    }
    const s = this.ctx.store.get();
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const layer = this.layerOf(s);
    if (!layer) return;
    const frame = this.ctx.frames.frame(info, layer, s.pair);
    const stats = this.ctx.derived.stats(s.kind)?.[s.layer * info.heads + head];
    this.preview.show(this.element, e, headThumbnail(frame.layer, head, frame.mask, 128),
      [`layer ${s.layer} · head ${head}`, ...statLines(stats)], this.ctx.theme.dark);
  }

  /** The selected layer at full resolution, else its pooled overview (a long input's). */
  private layerOf(s: Readonly<Selection>) {
    return this.ctx.source.peekLayer(s.kind, s.layer) ?? this.ctx.source.peekOverview(s.kind, s.layer);
  }

  private onClick(head: number): void {
    const s = this.ctx.store.get();
    this.ctx.store.set({ head: s.head === head ? -1 : head });
  }

  destroy(): void {
    this.multiples.destroy();
    this.element.remove();
  }
}
