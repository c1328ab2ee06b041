/**
 * Hidden states as a heat map, rows = embeddings then each layer, columns = tokens: each
 * vector's norm (log scale) or how far the layer turned it (1 - cosine to the same token's
 * vector one row earlier). Linked to the token selection.
 */

import { cssColor, weightColor } from "../colors";
import { clear, h } from "../dom";
import { columnWindow, shownTokens, type HiddenData, type Internals } from "../internals";
import { focusToken, type Selection } from "../state";
import { heatGrid, linkColumns, markColumn } from "./heat";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

export type HiddenMetric = "norm" | "cosine";

/** Row labels: "emb", then "L1".."Ln" (layers counted from 1); "Ln+norm" when the last row is after the final norm. */
export function rowLabels(layers: number, lastNormed = false): string[] {
  return ["emb", ...Array.from({ length: layers }, (_, i) => `L${i + 1}${lastNormed && i === layers - 1 ? "+norm" : ""}`)];
}

/** Colour positions 0..1 of each value: log-scaled norms, or 1 - cosine scaled to the largest turn. */
export function hiddenScale(data: HiddenData, metric: HiddenMetric, columns: number[]): (row: number, t: number) => number {
  const at = (arr: Float32Array, r: number, t: number) => arr[r * data.tokens + t];
  if (metric === "norm") {
    let lo = Infinity, hi = -Infinity;
    for (let r = 0; r <= data.layers; r++) for (const t of columns) {
      const v = Math.log(Math.max(at(data.norms, r, t), 1e-12));
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const span = hi - lo || 1;
    return (r, t) => (Math.log(Math.max(at(data.norms, r, t), 1e-12)) - lo) / span;
  }
  let most = 0;
  for (let r = 1; r <= data.layers; r++) for (const t of columns) {
    const turn = 1 - at(data.cosines, r, t);
    if (Number.isFinite(turn)) most = Math.max(most, turn);
  }
  return (r, t) => {
    const turn = 1 - at(data.cosines, r, t);
    return Number.isFinite(turn) ? turn / (most || 1) : NaN;
  };
}

export class HiddenView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "hidden states";
  private metric: HiddenMetric = "norm";
  private readonly body: HTMLElement;
  private readonly note: HTMLElement;
  private grid: HTMLElement | null = null;
  private window: [number, number] = [0, 0];
  private readonly unlink: () => void;

  constructor(private readonly ctx: ViewContext, private readonly internals: Internals) {
    this.element = h("div", "txm-panel txm-inside txm-hidden");
    this.element.dataset.view = "hidden";
    const bar = h("div", "txm-inside-bar");
    const select = h("select", "txm-hidden-metric");
    select.setAttribute("aria-label", "hidden-state measure");
    for (const [value, label] of [["norm", "vector norm"], ["cosine", "change from the row above (1 − cosine)"]]) {
      const o = h("option", "", label);
      o.value = value;
      select.append(o);
    }
    select.addEventListener("change", () => {
      this.metric = select.value === "cosine" ? "cosine" : "norm";
      this.update(this.ctx.store.get(), "all");
    });
    this.note = h("span", "txm-inside-note");
    bar.append(h("span", "", "show"), select, this.note);
    this.body = h("div", "txm-hidden-body");
    this.element.append(bar, this.body);
    this.unlink = linkColumns(this.body, ctx.store);
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    const data = this.internals.hidden;
    if (!data) return;
    const focus = focusToken(s);
    const n = shownTokens(this.internals, data.tokens);
    const win = columnWindow(n, focus);
    const same = this.grid && win[0] === this.window[0] && win[1] === this.window[1];
    if (this.grid && same && focusOnly(changes)) {
      markColumn(this.grid, focus);
      return;
    }
    this.window = win;
    const columns = Array.from({ length: win[1] - win[0] }, (_, i) => win[0] + i);
    const scale = hiddenScale(data, this.metric, columns);
    const tokens = this.ctx.source.meta.sequences.input?.text ?? [];
    const dark = this.ctx.theme.dark;
    const at = (arr: Float32Array, r: number, t: number) => arr[r * data.tokens + t];
    const gen = this.internals.generation;
    clear(this.body);
    this.grid = heatGrid({
      rows: rowLabels(data.layers, data.lastNormed), columns, tokens, generatedFrom: gen ? gen.prompt : Infinity,
      cell: (r, t) => {
        const v = scale(r, t);
        const norm = at(data.norms, r, t), cos = at(data.cosines, r, t);
        const normed = data.lastNormed && r === data.layers ? " after the final norm" : "";
        const where = `${r === 0 ? "embeddings" : `layer ${r}${normed}`} · #${t} ${tokens[t] ?? ""}`;
        const values = `norm ${norm.toPrecision(4)}${r > 0 ? ` · cosine to the row above ${cos.toFixed(4)}` : ""}`;
        return {
          background: Number.isNaN(v) ? "transparent" : cssColor(weightColor(v, dark)),
          title: `${where}\n${values}`,
        };
      },
    });
    this.body.append(this.grid);
    this.note.textContent = (this.metric === "norm" ? "darker: larger norm (log scale)" : "darker: the layer turned the vector more")
      + (win[1] - win[0] < n ? ` · tokens ${win[0]}–${win[1] - 1} of ${n}, around the selected one` : "");
    markColumn(this.grid, focus);
    this.element.dataset.drawn = "1";
  }

  destroy(): void {
    this.unlink();
    this.element.remove();
  }
}
