/**
 * The Census tab (tx_magic.census(...).show(), `tx-magic census` reports): every layer x head coloured
 * by its label (one colour per pattern; unlabelled heads grey), or by one pattern's mean score. Clicking
 * a head selects it in every view, shows it on the input that shows it best (for its label, else the
 * pattern it comes closest to) and lists, per pattern, its score over the inputs (mean, the range 95 % of
 * inputs fall in, on how many it reached the threshold) and its best inputs; choosing another shows it
 * in the views (the host swaps the trace: Python in a widget, the text
 * selector in a report). Numbers are Python's (tx_magic/analysis/census.py); nothing is recomputed.
 */

import { cssColor, headColors } from "../colors";
import { clear, h } from "../dom";
import type { Selection } from "../state";
import { CENSUS_BEST, toFloat32, toInt32, type WireCensusPanel } from "../wire";
import { cellGrid, markCell, weightCss } from "./cells";
import { touches, type Changes, type PanelView, type ViewContext } from "./view";

/** A census decoded: (pattern, layer, head) arrays, row-major. */
export interface CensusData extends Omit<WireCensusPanel, "means" | "low" | "high" | "scored" | "shown" | "best" | "best_scores"> {
  means: Float32Array;
  low: Float32Array;
  high: Float32Array;
  scored: Int32Array;
  shown: Int32Array;
  best: Int32Array;
  best_scores: Float32Array;
}

/** Check and decode the `_census` trait (or a report's census). */
export function decodeCensus(raw: WireCensusPanel): CensusData {
  const P = raw.patterns.length, L = raw.layers, H = raw.heads;
  const data: CensusData = {
    ...raw, means: toFloat32(raw.means), low: toFloat32(raw.low), high: toFloat32(raw.high),
    scored: toInt32(raw.scored), shown: toInt32(raw.shown), best: toInt32(raw.best), best_scores: toFloat32(raw.best_scores),
  };
  for (const name of ["means", "low", "high", "scored", "shown"] as const) {
    if (data[name].length !== P * L * H) throw new Error(`tx_magic: census ${name} holds ${data[name].length} values, expected ${P}x${L}x${H}`);
  }
  if (data.best.length !== P * L * H * CENSUS_BEST) throw new Error("tx_magic: census best inputs do not match its shape");
  if (raw.labels.length !== L || raw.labels.some((row) => row.length !== H)) throw new Error("tx_magic: census labels must be layers x heads");
  return data;
}

/** The index of (pattern, layer, head) in a census's arrays. */
export function at(c: CensusData, p: number, layer: number, head: number): number {
  return (p * c.layers + layer) * c.heads + head;
}

/** The best inputs of (layer, head) for pattern p, with their scores (largest first). */
export function bestInputs(c: CensusData, p: number, layer: number, head: number): { input: number; score: number }[] {
  const base = at(c, p, layer, head) * CENSUS_BEST;
  const out = [];
  for (let i = 0; i < CENSUS_BEST; i++) {
    const input = c.best[base + i];
    if (input >= 0) out.push({ input, score: c.best_scores[base + i] });
  }
  return out;
}

/** The pattern a head is shown for: its label, else the one whose mean comes closest to its threshold. */
export function focusPattern(c: CensusData, layer: number, head: number): number {
  const labelled = c.patterns.indexOf(c.labels[layer][head]);
  if (labelled >= 0) return labelled;
  let best = 0, ratio = -Infinity;
  c.patterns.forEach((_, p) => {
    const r = c.means[at(c, p, layer, head)] / c.thresholds[p];
    if (Number.isFinite(r) && r > ratio) [best, ratio] = [p, r];
  });
  return best;
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");

export class CensusView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Census";
  private readonly colour: HTMLSelectElement;
  private readonly gridHost: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly detail: HTMLElement;
  private grid: HTMLElement | null = null;
  private builtKey = "";
  private readonly colours: string[];

  /** `showInput(i)` shows input i in the views; null where the host cannot (the input is not in a report). */
  constructor(private readonly ctx: ViewContext, private readonly census: CensusData,
    private readonly showInput: (input: number) => void) {
    this.element = h("div", "txm-panel txm-census");
    this.element.dataset.view = "census";
    this.colours = headColors(census.patterns.length, ctx.theme.dark).map((c) => cssColor(c));
    const header = h("div", "txm-view-header");
    this.colour = h("select", "txm-census-colour");
    this.colour.setAttribute("aria-label", "what colours the heads");
    this.colour.append(Object.assign(h("option", "", "label"), { value: "label" }));
    census.patterns.forEach((p, i) => {
      this.colour.append(Object.assign(h("option", "", `${p} score`), { value: String(i) }));
    });
    this.colour.addEventListener("change", () => {
      this.builtKey = "";
      this.update(this.ctx.store.get(), "all");
    });
    const labelled = census.labels.flat().filter(Boolean).length;
    header.append(h("span", "txm-view-title", `Census of ${census.layers * census.heads} ${census.kind} heads over ${census.inputs.length} inputs`),
      this.colour, h("span", "txm-hint", `${labelled} labelled · click a head for its evidence and best inputs`));
    this.gridHost = h("div", "txm-census-grid");
    this.legend = h("div", "txm-type-legend");
    this.detail = h("div", "txm-census-detail");
    this.element.append(header, this.gridHost, this.legend, this.detail);
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    const c = this.census;
    const key = `${this.colour.value}|${this.ctx.theme.dark}`;
    if (key !== this.builtKey || !this.grid) {
      this.builtKey = key;
      this.build();
    }
    if (this.grid) markCell(this.grid, s.layer, s.head);
    if (touches(changes, "layer", "head") || changes === "all") this.describe(Math.min(s.layer, c.layers - 1), s.head);
  }

  private build(): void {
    const c = this.census;
    const by = this.colour.value;
    const p = by === "label" ? -1 : Number(by);
    clear(this.gridHost);
    this.grid = cellGrid({
      rowLabels: Array.from({ length: c.layers }, (_, l) => `L${l}`),
      colLabels: Array.from({ length: c.heads }, (_, x) => String(x)),
      size: c.heads > 24 ? 14 : 20,
      cell: (layer, head) => {
        const label = c.labels[layer][head];
        if (p < 0) {
          const i = c.patterns.indexOf(label);
          return {
            background: i >= 0 ? this.colours[i] : this.ctx.theme.dark ? "#3a3a3e" : "#e6e6e6",
            text: label ? label[0].toUpperCase() : "", color: "#fff",
            title: `layer ${layer} · head ${head}: ${c.evidence[layer][head] || "no label"}`,
          };
        }
        const v = c.means[at(c, p, layer, head)];
        return { background: weightCss(v, this.ctx.theme.dark), title: `layer ${layer} · head ${head}: ${c.patterns[p]} ${fmt(v)}` };
      },
      onClick: (layer, head) => this.pick(layer, head),
    });
    this.grid.dataset.colour = by;
    this.gridHost.append(this.grid);
    clear(this.legend);
    if (p < 0) {
      c.patterns.forEach((name, i) => {
        const n = c.labels.flat().filter((x) => x === name).length;
        if (!n) return;
        const item = h("span", "txm-type-item");
        const swatch = h("span", "txm-type-letter", name[0].toUpperCase());
        swatch.style.background = this.colours[i];
        swatch.style.color = "#fff";
        item.append(swatch, h("span", "", `${name} (${n})`));
        this.legend.append(item);
      });
    } else {
      this.legend.append(h("span", "", `${c.patterns[p]}: mean score over the inputs (threshold ${c.thresholds[p]})`));
    }
  }

  /** Select a head clicked in the grid and show it on the input that shows it best (when the host has it). */
  private pick(layer: number, head: number): void {
    const c = this.census;
    this.ctx.store.set({ layer, head });
    const best = bestInputs(c, focusPattern(c, layer, head), layer, head)[0]?.input;
    if (best !== undefined && best !== c.current && (!c.texts || c.texts[best] >= 0)) this.showInput(best);
  }

  /** The selected head's scores and best inputs. */
  private describe(layer: number, head: number): void {
    const c = this.census;
    clear(this.detail);
    if (head < 0) {
      this.detail.append(h("div", "txm-hint", "select one head (click it) for its evidence"));
      return;
    }
    const label = c.labels[layer][head];
    this.detail.dataset.head = `${layer},${head}`;
    this.detail.append(h("div", "txm-census-evidence", `layer ${layer} · head ${head}: ${label ? c.evidence[layer][head] : "no label (no pattern clearly dominates)"}`));
    const table = h("table", "txm-census-table");
    const hrow = h("tr");
    for (const t of ["pattern", "mean", "95% of inputs", "≥ threshold", "best inputs"]) hrow.append(h("th", "", t));
    table.append(h("thead"), h("tbody"));
    table.tHead?.append(hrow);
    const order = c.patterns.map((_, p) => p).sort((a, b) => (c.patterns[b] === label ? 1 : 0) - (c.patterns[a] === label ? 1 : 0));
    for (const p of order) {
      const i = at(c, p, layer, head);
      const tr = h("tr");
      if (c.patterns[p] === label) tr.classList.add("txm-selected");
      tr.append(h("td", "", c.patterns[p]), h("td", "txm-num", fmt(c.means[i])), h("td", "txm-num", `${fmt(c.low[i])}–${fmt(c.high[i])}`),
        h("td", "txm-num", `${c.shown[i]} of ${c.scored[i]}`));
      const cell = h("td", "txm-census-inputs");
      for (const { input, score } of bestInputs(c, p, layer, head)) {
        const available = !c.texts || c.texts[input] >= 0;
        const b = h("button", "txm-link txm-census-input", `#${input} (${fmt(score)})`);
        b.type = "button";
        b.dataset.input = String(input);
        b.title = available ? `show ${c.inputs[input]}` : `${c.inputs[input]}: not in this report`;
        b.disabled = !available;
        if (input === c.current) b.classList.add("txm-on");
        b.addEventListener("click", () => this.showInput(input));
        cell.append(b);
      }
      tr.append(cell);
      table.tBodies[0].append(tr);
    }
    this.detail.append(table, h("div", "txm-hint", `showing input #${c.current}: ${c.inputs[c.current] ?? ""}`));
  }

  destroy(): void {
    this.element.remove();
  }
}
