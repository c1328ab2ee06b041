/**
 * The Compare tab (tx_magic.compare(a, b).show()): the selected layer's matrix (one head, or the mean of
 * the selected heads) in A, in B and A − B in diverging colours (blue: B higher, red: A higher), an
 * overview of every layer x head coloured by how much it changed, and the heads whose statistics moved
 * most. When the tokens do not line up (different lengths) only the statistics compare, and it says so.
 * The widget's own trace is A; B's data comes in the `_compare` trait. Statistic deltas are Python's.
 */

import { headMatrix } from "../aggregate";
import { cssColor, weightColor, weightScale } from "../colors";
import { clear, h } from "../dom";
import { LayerStore, type LayerData } from "../source";
import type { Selection } from "../state";
import { kindInfo, toFloat32, type WireComparisonPanel } from "../wire";
import { cellGrid, divergingColor, markCell, paintMatrix } from "./cells";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

/** The matrix the tab shows of a layer: head `head`, or the mean of `heads`. */
export function shownMatrix(layer: LayerData, heads: readonly number[], head: number): Float32Array {
  if (head >= 0) return headMatrix(layer, head);
  const [H, q, k] = layer.shape;
  const chosen = heads.length ? heads : Array.from({ length: H }, (_, i) => i);
  const out = new Float32Array(q * k);
  for (const x of chosen) {
    const m = headMatrix(layer, x);
    for (let i = 0; i < out.length; i++) out[i] += m[i] / chosen.length;
  }
  return out;
}

/** a − b, cell by cell. */
export function difference(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}

/** Mean |a − b| of each head of two layers. */
export function headChange(a: LayerData, b: LayerData): number[] {
  const [H, q, k] = a.shape;
  return Array.from({ length: H }, (_, x) => {
    const d = difference(headMatrix(a, x), headMatrix(b, x));
    let total = 0;
    for (const v of d) total += Math.abs(v);
    return total / Math.max(1, q * k);
  });
}

const fmt = (x: number) => (Number.isFinite(x) ? (Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(1) : x.toFixed(3)) : "–");

export class CompareView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Compare";
  private readonly b: LayerStore;
  private readonly measure: HTMLSelectElement;
  private readonly matrices: HTMLElement;
  private readonly overviewHost: HTMLElement;
  private readonly table: HTMLElement;
  private overview: HTMLElement | null = null;
  private readonly deltas: Record<string, Record<string, Float32Array>> = {};

  constructor(private readonly ctx: ViewContext, private readonly data: WireComparisonPanel) {
    this.element = h("div", "txm-panel txm-compare");
    this.element.dataset.view = "compare";
    this.b = LayerStore.fromWire(data.meta, data.layers, (kind, layer) =>
      Promise.reject(new Error(`${data.labels[1]}'s ${kind} layer ${layer} was not sent (over the widget's budget)`)));
    for (const [kind, stats] of Object.entries(data.deltas)) {
      this.deltas[kind] = Object.fromEntries(Object.entries(stats).map(([name, bytes]) => [name, toFloat32(bytes)]));
    }
    const header = h("div", "txm-view-header");
    this.measure = h("select", "txm-compare-measure");
    this.measure.setAttribute("aria-label", "what colours the overview");
    if (data.cells) this.measure.append(Object.assign(h("option", "", `mean |${data.labels[0]} − ${data.labels[1]}|`), { value: "cells" }));
    const first = Object.values(this.deltas)[0] ?? {};
    for (const name of Object.keys(first)) this.measure.append(Object.assign(h("option", "", `Δ ${name}`), { value: name }));
    this.measure.addEventListener("change", () => this.update(this.ctx.store.get(), "all"));
    const note = h("span", "txm-hint txm-compare-note", data.note);
    header.append(h("span", "txm-view-title", `${data.labels[0]} vs ${data.labels[1]}`), this.measure, note);
    this.matrices = h("div", "txm-compare-matrices");
    this.overviewHost = h("div", "txm-compare-overview");
    this.table = h("div", "txm-compare-table");
    this.element.append(header, this.matrices, this.overviewHost, this.table);
  }

  needsAllLayers(): boolean {
    return this.data.cells && this.measure.value === "cells";
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    this.drawMatrices(s);
    this.drawOverview(s, info.layers, info.heads);
    this.drawTable(s, info.layers, info.heads);
  }

  private drawMatrices(s: Readonly<Selection>): void {
    clear(this.matrices);
    if (!this.data.cells) {
      this.matrices.append(h("div", "txm-hint", this.data.note));
      return;
    }
    const a = this.ctx.source.peekLayer(s.kind, s.layer);
    const b = this.b.peekLayer(s.kind, s.layer);
    if (!a || !b) {
      this.matrices.append(h("div", "txm-hint", !b ? `${this.data.labels[1]}'s layer ${s.layer} is not here` : `loading layer ${s.layer}…`));
      if (!a && this.ctx.source.live) this.ctx.source.getLayer(s.kind, s.layer).then(() => this.update(this.ctx.store.get(), "all"), (err: unknown) => this.ctx.report(err));
      return;
    }
    const [, q, k] = a.shape;
    const ma = shownMatrix(a, s.heads, s.head), mb = shownMatrix(b, s.heads, s.head), d = difference(ma, mb);
    let largest = 0;
    for (const v of d) largest = Math.max(largest, Math.abs(v));
    const cell = Math.max(2, Math.min(14, Math.floor(200 / Math.max(q, k))));
    const what = s.head >= 0 ? `head ${s.head}` : "mean of the heads";
    const dark = this.ctx.theme.dark;
    const weight = (v: number) => weightColor(weightScale(v), dark);
    for (const [label, m, colour] of [[this.data.labels[0], ma, weight], [this.data.labels[1], mb, weight],
      [`${this.data.labels[0]} − ${this.data.labels[1]}`, d, (v: number) => divergingColor(largest > 0 ? v / largest : 0, dark)]] as const) {
      const box = h("figure", "txm-compare-matrix");
      const canvas = h("canvas");
      paintMatrix(canvas, m, q, k, cell, colour);
      box.append(canvas, h("figcaption", "", `${label} · layer ${s.layer}, ${what}`));
      this.matrices.append(box);
    }
    this.matrices.dataset.largest = String(largest);
    this.matrices.append(h("div", "txm-hint", `A − B from ${fmt(-largest)} (blue) to ${fmt(largest)} (red)`));
  }

  /** Per head, the chosen measure (mean |A − B|, or a statistic's delta), layer-major; null while layers load. */
  private values(kind: string, layers: number, heads: number): number[] | null {
    const m = this.measure.value;
    if (m !== "cells") return Array.from(this.deltas[kind]?.[m] ?? new Float32Array(layers * heads).fill(NaN));
    const out: number[] = [];
    for (let l = 0; l < layers; l++) {
      const a = this.ctx.source.peekLayer(kind, l), b = this.b.peekLayer(kind, l);
      if (!a || !b) return null;
      out.push(...headChange(a, b));
    }
    return out;
  }

  private drawOverview(s: Readonly<Selection>, layers: number, heads: number): void {
    clear(this.overviewHost);
    const values = this.values(s.kind, layers, heads);
    if (!values) {
      this.overviewHost.append(h("div", "txm-hint", "loading every layer…"));
      return;
    }
    const signed = this.measure.value !== "cells";
    const largest = Math.max(1e-12, ...values.filter(Number.isFinite).map(Math.abs));
    const dark = this.ctx.theme.dark;
    this.overview = cellGrid({
      rowLabels: Array.from({ length: layers }, (_, l) => `L${l}`), colLabels: Array.from({ length: heads }, (_, x) => String(x)),
      size: heads > 24 ? 12 : 18,
      cell: (l, x) => {
        const v = values[l * heads + x];
        const colour = signed ? divergingColor(v / largest, dark) : weightColor(weightScale(v / largest), dark);
        return { background: Number.isFinite(v) ? cssColor(colour) : "transparent", title: `layer ${l} · head ${x}: ${this.measure.selectedOptions[0]?.textContent ?? ""} ${fmt(v)}` };
      },
      onClick: (layer, head) => this.ctx.store.set({ layer, head }),
    });
    this.overview.dataset.measure = this.measure.value;
    markCell(this.overview, s.layer, s.head);
    this.overviewHost.append(this.overview, h("div", "txm-hint", signed ? `${this.data.labels[0]} − ${this.data.labels[1]}: blue below 0, red above (largest |Δ| ${fmt(largest)})` : `mean |A − B| per head, darkest ${fmt(largest)}`));
  }

  /** The 10 heads whose chosen statistic moved most. */
  private drawTable(s: Readonly<Selection>, layers: number, heads: number): void {
    clear(this.table);
    const name = this.measure.value === "cells" ? "entropy" : this.measure.value;
    const d = this.deltas[s.kind]?.[name];
    if (!d) return;
    const order = Array.from({ length: layers * heads }, (_, i) => i).filter((i) => Number.isFinite(d[i]))
      .sort((x, y) => Math.abs(d[y]) - Math.abs(d[x])).slice(0, 10);
    const table = h("table", "txm-stats-table");
    const head = h("tr");
    for (const t of ["layer", "head", `Δ ${name} (${this.data.labels[0]} − ${this.data.labels[1]})`]) head.append(h("th", "", t));
    table.append(head);
    for (const i of order) {
      const tr = h("tr");
      tr.dataset.key = String(i);
      tr.append(h("td", "", String(Math.floor(i / heads))), h("td", "", String(i % heads)), h("td", "txm-num", fmt(d[i])));
      tr.addEventListener("click", () => this.ctx.store.set({ layer: Math.floor(i / heads), head: i % heads }));
      table.append(tr);
    }
    this.table.append(h("div", "txm-view-title", "largest changes"), table);
  }

  destroy(): void {
    this.element.remove();
  }
}
