/**
 * Effects tab: which heads matter. A layers x heads (or x positions, or x the attention block) heat map
 * of activation-patching effects per method (exact and gradient side by side), on a diverging scale
 * (red: the site restores the clean answer, blue: it pushes the other way), the exact value on hover,
 * their rank correlation, and the largest effects as a list. Click selects that layer and head in every
 * view (as the overview does); Alt-click (or Ctrl/Cmd-click) ablates the head (the kernel reruns).
 * Cells are DOM elements with their values as text in titles (no innerHTML).
 */

import { clear, h, listenGuarded } from "../dom";
import { headName } from "../interventions";
import { divergingColor, effectScale, type Patching, type PatchingResult } from "../patching";
import { focusToken, type Selection } from "../state";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

/** Largest effects listed under the maps. */
export const TOP = 8;

const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? (x >= 0 ? "+" : "") + x.toFixed(digits) : "–");

/** Whether a click asks for ablation rather than selection. */
export function ablates(e: MouseEvent): boolean {
  return e.altKey || e.ctrlKey || e.metaKey;
}

/** The sites of a result with the largest |effect|, largest first: [row, col, effect]. */
export function topSites(result: PatchingResult, cols: number, k = TOP): [number, number, number][] {
  const order = Array.from(result.effects.keys()).filter((i) => Number.isFinite(result.effects[i]));
  order.sort((a, b) => Math.abs(result.effects[b]) - Math.abs(result.effects[a]) || a - b);
  return order.slice(0, k).map((i) => [Math.floor(i / cols), i % cols, result.effects[i]]);
}

export class EffectsView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Effects";
  private readonly header: HTMLElement;
  private readonly maps: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly top: HTMLElement;
  private builtDark: boolean | null = null;
  private cells: HTMLElement[][] = [];
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext, private readonly patching: Patching) {
    this.element = h("div", "txm-panel txm-effects");
    this.element.dataset.view = "effects";
    this.element.dataset.by = patching.by;
    this.header = h("div", "txm-view-header");
    this.maps = h("div", "txm-effects-maps");
    this.readout = h("div", "txm-hint txm-effects-readout");
    this.readout.setAttribute("aria-live", "polite");
    this.top = h("div", "txm-effects-top");
    this.element.append(this.header, this.maps, this.readout, this.top);
    const on = (target: EventTarget, type: string, fn: (e: Event) => void) =>
      this.cleanups.push(listenGuarded(target, type, fn, (err) => this.ctx.report(err)));
    on(this.element, "click", (e) => this.onClick(e as MouseEvent));
    on(this.maps, "mouseover", (e) => this.onHover(e as MouseEvent));
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes) && this.patching.by !== "position") return;
    if (this.builtDark !== this.ctx.theme.dark) this.build();
    this.mark(s);
  }

  private build(): void {
    const p = this.patching, dark = this.ctx.theme.dark;
    this.builtDark = dark;
    clear(this.header);
    const corr = p.correlation === null ? "" : ` · rank correlation (Spearman) of ${p.results[0].method} and ${p.results[1].method}: ${p.correlation.toFixed(3)}`;
    this.header.append(h("span", "txm-view-title", `Patching effects (${p.by === "head" ? "each head" : p.by === "layer" ? "each layer's attention" : "each layer at each position"})`),
      h("span", "txm-hint", `${p.metric}: clean ${p.metricClean.toFixed(3)}, corrupted ${p.metricCorrupt.toFixed(3)}${corr}`));
    clear(this.maps);
    this.cells = [];
    const scale = effectScale(p);
    p.results.forEach((result, r) => {
      const block = h("div", "txm-effects-map");
      block.dataset.method = result.method;
      const seconds = Number.isFinite(result.seconds) ? ` · ${result.seconds.toFixed(1)} s` : "";
      block.append(h("div", "txm-effects-title", `${result.method}${seconds}`));
      const grid = h("div", "txm-effects-grid");
      grid.style.gridTemplateColumns = `max-content repeat(${p.cols}, minmax(12px, 1fr))`;
      grid.append(h("span", "txm-effects-corner", p.by === "head" ? "layer \\ head" : "layer"));
      for (const label of p.columns) {
        const col = h("span", "txm-effects-col", label);
        col.title = label;
        col.dir = "auto";
        grid.append(col);
      }
      const cells: HTMLElement[] = [];
      for (let row = 0; row < p.rows; row++) {
        grid.append(h("span", "txm-effects-row", String(row)));
        for (let col = 0; col < p.cols; col++) {
          const i = row * p.cols + col, effect = result.effects[i];
          const cell = h("span", "txm-effect-cell");
          cell.dataset.row = String(row);
          cell.dataset.col = String(col);
          cell.dataset.result = String(r);
          cell.dataset.effect = String(effect);
          cell.style.background = divergingColor(effect / scale, dark);
          cell.title = `${this.siteName(row, col)} · effect ${fmt(effect)} · ${p.metric} ${result.raw[i].toFixed(4)} (${result.method})`;
          cells.push(cell);
          grid.append(cell);
        }
      }
      this.cells.push(cells);
      block.append(grid);
      this.maps.append(block);
    });
    this.maps.append(this.legend(scale, dark));
    this.buildTop();
    this.readout.textContent = `hover a cell for its value · click selects it in every view${p.by === "head" && this.ctx.interventions?.live ? " · Alt-click ablates the head" : ""}`;
  }

  private legend(scale: number, dark: boolean): HTMLElement {
    const legend = h("div", "txm-effects-legend");
    const bar = h("span", "txm-effects-bar");
    const stops = [-1, -0.5, 0, 0.5, 1].map((t) => divergingColor(t, dark));
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    legend.append(h("span", "", fmt(-scale, 2)), bar, h("span", "", fmt(scale, 2)));
    legend.title = "1 = the site alone restores the clean run's metric, 0 = no change, < 0 = pushes the other way";
    return legend;
  }

  private buildTop(): void {
    const p = this.patching;
    clear(this.top);
    this.top.append(h("span", "txm-label", `largest (${p.results[0].method}):`));
    for (const [row, col, effect] of topSites(p.results[0], p.cols)) {
      const b = h("button", "txm-link txm-effects-site", `${this.siteName(row, col)} ${fmt(effect, 2)}`);
      b.type = "button";
      b.dataset.row = String(row);
      b.dataset.col = String(col);
      const others = p.results.slice(1).map((r) => `${r.method} ${fmt(r.effects[row * p.cols + col], 2)}`).join(", ");
      b.title = others ? `${p.results[0].method} ${fmt(effect, 2)}, ${others}` : "";
      this.top.append(b);
    }
  }

  private siteName(row: number, col: number): string {
    const p = this.patching;
    if (p.by === "head") return headName({ kind: p.kind, layer: row, head: col });
    if (p.by === "layer") return `L${row}`;
    return `L${row} #${col} ${p.columns[col] ?? ""}`;
  }

  private site(e: Event): [number, number] | null {
    const el = (e.target as Element | null)?.closest?.("[data-row][data-col]") as HTMLElement | null;
    return el && this.element.contains(el) ? [Number(el.dataset.row), Number(el.dataset.col)] : null;
  }

  private onHover(e: MouseEvent): void {
    const at = this.site(e);
    if (!at) return;
    const p = this.patching, i = at[0] * p.cols + at[1];
    const values = p.results.map((r) => `${r.method} ${fmt(r.effects[i])} (${p.metric} ${r.raw[i].toFixed(4)})`);
    this.readout.textContent = `${this.siteName(...at)}: ${values.join(" · ")}`;
  }

  private onClick(e: MouseEvent): void {
    const at = this.site(e);
    if (!at) return;
    const [row, col] = at, p = this.patching;
    if (p.by === "head" && ablates(e) && this.ctx.interventions?.live) {
      this.ctx.interventions.toggle(p.kind, row, col);
      return;
    }
    const s = this.ctx.store.get();
    const kind = this.ctx.source.meta.kinds.some((k) => k.name === p.kind) ? p.kind : s.kind;
    if (p.by === "head") this.ctx.store.set({ kind, layer: row, head: col });
    else if (p.by === "layer") this.ctx.store.set({ kind, layer: row });
    else this.ctx.store.set({ kind, layer: row, pinned: col, pinnedSide: "query" });
  }

  /** Outline the selected site; mark ablated heads. */
  private mark(s: Readonly<Selection>): void {
    const p = this.patching;
    const focus = focusToken(s);
    const selectedCol = p.by === "head" ? s.head : p.by === "layer" ? 0 : focus;
    const ablated = new Set(p.by === "head" ? this.ctx.interventions?.ablatedKeys(p.kind, p.cols) ?? [] : []);
    for (const cells of this.cells) {
      cells.forEach((cell, i) => {
        const row = Math.floor(i / p.cols), col = i % p.cols;
        cell.classList.toggle("txm-selected", s.kind === p.kind && row === s.layer && col === selectedCol);
        cell.classList.toggle("txm-ablated", ablated.has(i));
      });
    }
    this.element.dataset.selected = `${s.layer},${selectedCol}`;
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
