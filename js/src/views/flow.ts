/**
 * The Flow tab: the information-flow routes (Ferrando & Voita 2024) into one token, as a token x layer
 * graph. Rows, bottom to top: the embeddings, then for each layer the state after its attention block
 * and after its MLP block; columns: tokens. Edges come from Python (REQUEST_FLOW, definitions in
 * tx_magic/analysis/flow.py): attention edges from a token's state into another's (coloured by the head
 * carrying most of it), the residual and the MLP, each as thick as its share of the state it feeds.
 *
 * The routes are drawn into the pinned token (clicked anywhere, or Python's `token`), else the last one.
 * Clicking an attention edge selects its layer and head in every view; the head list under the graph
 * does the same; clicking a node pins its token (and draws the routes into it).
 */

import { Answers, offersFor, type AnalysisFetchers } from "../analyses";
import { cssColor, headColor } from "../colors";
import { clear, errorMessage, h } from "../dom";
import type { Selection } from "../state";
import { ANALYSIS_FLOW, kindInfo, type FlowEdge, type FlowGraph } from "../wire";
import { touches, type Changes, type PanelView, type ViewContext } from "./view";

const SVG = "http://www.w3.org/2000/svg";
export const DEFAULT_THRESHOLD = 0.04;
/** The smallest threshold Python answers (MIN_FLOW_THRESHOLD of tx_magic/wire/schema_analyses.py). */
const MIN_FLOW_THRESHOLD = 0.005;
/** Tokens beyond which only the tokens on the routes get a column. */
const ALL_COLUMNS = 40;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The graph's rows: 2 * layer for a layer's input, 2 * layer + 1 after its attention, 2 * layer + 2 after its MLP. */
export function edgeRows(e: FlowEdge): [from: number, to: number] {
  return e.type === "mlp" || e.type === "mlp_residual" ? [2 * e.layer + 1, 2 * e.layer + 2] : [2 * e.layer, 2 * e.layer + 1];
}

/** The token columns drawn: every token of a short input, else those on the routes (in order). */
export function flowColumns(graph: FlowGraph, tokens: number): number[] {
  if (tokens <= ALL_COLUMNS) return Array.from({ length: tokens }, (_, i) => i);
  const used = new Set<number>();
  for (const e of graph.edges) used.add(e.source).add(e.target);
  if (graph.token >= 0) used.add(graph.token);
  return [...used].sort((a, b) => a - b);
}

/** Per drawn edge (not "head" edges) its heads' shares, strongest first. */
export function headsOf(graph: FlowGraph): Map<string, [head: number, weight: number][]> {
  const out = new Map<string, [number, number][]>();
  for (const e of graph.edges) {
    if (e.type !== "head") continue;
    const key = `${e.layer}/${e.source}/${e.target}`;
    const list = out.get(key) ?? [];
    list.push([e.head, e.weight]);
    out.set(key, list.sort((a, b) => b[1] - a[1]));
  }
  return out;
}

export class FlowView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Flow";
  private readonly body: HTMLElement;
  private readonly status: HTMLElement;
  private readonly heads: HTMLElement;
  private readonly slider: HTMLInputElement;
  private readonly answers: Answers<FlowGraph>;
  private threshold = DEFAULT_THRESHOLD;
  private selection: Readonly<Selection> | null = null;
  private drawn = "";

  constructor(private readonly ctx: ViewContext, private readonly fetchers: AnalysisFetchers) {
    this.element = h("div", "txm-panel txm-inside txm-flow");
    this.element.dataset.view = "flow";
    const bar = h("div", "txm-inside-bar");
    this.slider = h("input", "txm-flow-threshold");
    Object.assign(this.slider, { type: "range", min: "0.01", max: "0.3", step: "0.01", value: String(DEFAULT_THRESHOLD) });
    this.slider.setAttribute("aria-label", "threshold: the smallest share of a state an edge must carry");
    const shown = h("span", "txm-inside-note", `≥ ${DEFAULT_THRESHOLD.toFixed(2)}`);
    this.slider.addEventListener("change", () => {
      this.threshold = Math.max(MIN_FLOW_THRESHOLD, Number(this.slider.value));
      shown.textContent = `≥ ${this.threshold.toFixed(2)}`;
      if (this.selection) this.update(this.selection, "all");
    });
    this.status = h("span", "txm-inside-note txm-flow-status");
    this.status.setAttribute("aria-live", "polite");
    bar.append(h("span", "", "routes into the token (Ferrando & Voita 2024): edges carrying at least"), this.slider, shown,
      h("span", "txm-inside-note", "of a state · click an edge or head to select it, a node to follow its token"), this.status);
    this.body = h("div", "txm-flow-body");
    this.heads = h("div", "txm-flow-heads");
    this.element.append(bar, this.body, this.heads);
    this.answers = new Answers(() => {
      if (this.selection && !this.element.hidden) this.update(this.selection, "all");
    });
  }

  needsAllLayers(): boolean {
    return false;
  }

  /** The token whose routes are drawn: the pinned one, else the last. */
  private token(s: Readonly<Selection>): number {
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const n = this.ctx.source.meta.sequences[info.queries].text.length;
    return s.pinned >= 0 && s.pinned < n && (s.pinnedSide === "query" || info.queries === info.keys) ? s.pinned : n - 1;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    this.selection = s;
    if (!touches(changes, "kind", "pinned", "pinnedSide", "layer", "head")) return;
    const meta = this.ctx.source.meta;
    if (!offersFor(meta, s.kind, ANALYSIS_FLOW) || !this.fetchers.flow) {
      this.show("none", `no information flow for ${s.kind} attention: it needs a transformers model captured in full ` +
        "(and a live kernel), and a self-attention stack");
      return;
    }
    const token = this.token(s);
    const key = `${s.kind}/${token}/${this.threshold}`;
    const fetch = this.fetchers.flow;
    this.answers.want(key, () => fetch(s.kind, token, this.threshold));
    const graph = this.answers.peek(key);
    const failed = this.answers.error(key);
    if (failed) {
      this.show("error", `information flow unavailable: ${errorMessage(failed)} `);
      const retry = h("button", "txm-lens-retry", "retry");
      retry.type = "button";
      retry.addEventListener("click", () => {
        this.answers.want(key, () => fetch(s.kind, token, this.threshold), true);
        this.update(s, "all");
      });
      this.status.append(retry);
      return;
    }
    if (!graph) {
      this.show("computing", "computing the routes… (the first time, one more pass of the model)");
      return;
    }
    const drawnKey = `${key}/${s.layer}/${s.head}/${this.ctx.theme.dark}`;
    if (drawnKey !== this.drawn || changes === "all") this.draw(s, graph);
    this.drawn = drawnKey;
  }

  private show(state: string, text: string): void {
    this.element.dataset.state = state;
    this.element.dataset.drawn = "0";
    this.status.textContent = text;
    if (state !== "computing") clear(this.body);
    this.drawn = "";
  }

  private draw(s: Readonly<Selection>, graph: FlowGraph): void {
    const meta = this.ctx.source.meta;
    const info = kindInfo(meta, s.kind);
    const tokens = meta.sequences[info.queries].text;
    const columns = flowColumns(graph, tokens.length);
    const col = new Map(columns.map((t, i) => [t, i]));
    const rows = 2 * graph.layers + 1;
    const colW = Math.max(28, Math.min(64, Math.floor(((this.element.clientWidth || 720) - 60) / Math.max(1, columns.length))));
    const rowH = Math.max(10, Math.min(22, Math.floor(640 / rows)));
    const left = 44, top = 8, width = left + columns.length * colW + 8, height = top + rows * rowH + 70;
    const x = (t: number) => left + (col.get(t) ?? 0) * colW + colW / 2;
    const y = (row: number) => top + (rows - 1 - row) * rowH + rowH / 2;
    const dark = this.ctx.theme.dark;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "txm-flow-graph", role: "img" });
    root.setAttribute("aria-label", `information flow into token ${graph.token} (${tokens[graph.token] ?? ""})`);
    for (let l = 0; l < graph.layers; l++) {
      if (l === s.layer) root.append(svg("rect", { x: 0, y: y(2 * l + 2) - rowH / 2, width, height: 2 * rowH, class: "txm-flow-current" }));
      const label = svg("text", { x: 4, y: y(2 * l + 1) + 4, class: "txm-flow-layer" });
      label.textContent = `L${l}`;
      root.append(label);
    }
    const shares = headsOf(graph);
    const nodes = new Set<string>();
    for (const e of graph.edges) {
      if (e.type === "head" || !col.has(e.source) || !col.has(e.target)) continue;
      const [r0, r1] = edgeRows(e);
      nodes.add(`${r0}/${e.source}`).add(`${r1}/${e.target}`);
      const x0 = x(e.source), x1 = x(e.target), y0 = y(r0), y1 = y(r1);
      const bend = e.type === "mlp" ? colW * 0.3 : 0;
      const d = e.type === "attention"
        ? `M${x0},${y0} C${x0},${(y0 + y1) / 2} ${x1},${(y0 + y1) / 2} ${x1},${y1}`
        : `M${x0},${y0} Q${x0 + bend},${(y0 + y1) / 2} ${x1},${y1}`;
      const color = e.type === "attention" ? cssColor(headColor(e.head, info.heads, dark))
        : e.type === "mlp" ? (dark ? "#e0a050" : "#c07020") : (dark ? "#9aa" : "#889");
      const current = e.layer === s.layer && (s.head < 0 || e.type !== "attention" ||
        (shares.get(`${e.layer}/${e.source}/${e.target}`) ?? [[e.head, 0]]).some(([hd]) => hd === s.head));
      const path = svg("path", {
        d, fill: "none", stroke: color, "stroke-width": (0.6 + 4.5 * e.weight).toFixed(2),
        "stroke-opacity": (0.3 + 0.7 * e.weight).toFixed(2), class: `txm-flow-edge txm-flow-${e.type}${current ? " txm-on" : ""}`,
      });
      Object.assign(path.dataset, { layer: String(e.layer), type: e.type, head: String(e.head), source: String(e.source),
        target: String(e.target), weight: e.weight.toFixed(4) });
      const title = svg("title", {});
      const heads = shares.get(`${e.layer}/${e.source}/${e.target}`) ?? [];
      title.textContent = `layer ${e.layer} · ${e.type === "attention" ? `${tokens[e.source] ?? e.source} → ` : ""}` +
        `${tokens[e.target] ?? e.target} · ${(e.weight * 100).toFixed(1)}% of its state (${e.type.replace("_", " ")})` +
        (heads.length ? ` · heads ${heads.map(([hd, w]) => `${hd} ${(w * 100).toFixed(1)}%`).join(", ")}` : "");
      path.append(title);
      if (e.type === "attention" && e.head >= 0) path.addEventListener("click", () => this.ctx.store.set({ layer: e.layer, head: e.head }));
      root.append(path);
    }
    for (const node of nodes) {
      const [row, t] = node.split("/").map(Number);
      const dot = svg("circle", { cx: x(t), cy: y(row), r: row % 2 === 1 ? 2.5 : 3.5, class: "txm-flow-node" });
      dot.dataset.token = String(t);
      dot.addEventListener("click", () => this.ctx.store.set({ pinned: t, pinnedSide: "query" }));
      root.append(dot);
    }
    for (const t of columns) {
      const label = svg("text", { x: x(t), y: top + rows * rowH + 6, class: `txm-flow-token${t === graph.token ? " txm-on" : ""}`,
        transform: `rotate(60 ${x(t)} ${top + rows * rowH + 6})` });
      label.textContent = tokens[t] ?? String(t);
      label.setAttribute("direction", "ltr");
      root.append(label);
    }
    clear(this.body);
    this.body.append(root);
    this.drawHeads(graph, info.heads);
    const n = graph.edges.filter((e) => e.type !== "head").length;
    this.status.textContent = n ? `${n} edges into “${tokens[graph.token] ?? graph.token}”` +
      (columns.length < tokens.length ? ` · ${columns.length} of ${tokens.length} tokens on the routes` : "")
      : "no edge reaches the threshold: lower it";
    this.element.dataset.state = "done";
    this.element.dataset.drawn = "1";
    this.element.dataset.edges = String(n);
    this.element.dataset.token = String(graph.token);
  }

  /** The heads on the routes, strongest first: each a button selecting that layer and head. */
  private drawHeads(graph: FlowGraph, count: number): void {
    clear(this.heads);
    const total = new Map<string, number>();
    for (const e of graph.edges) if (e.type === "head") total.set(`${e.layer}/${e.head}`, (total.get(`${e.layer}/${e.head}`) ?? 0) + e.weight);
    const top = [...total].sort((a, b) => b[1] - a[1]).slice(0, 24);
    if (top.length === 0) return;
    this.heads.append(h("span", "txm-inside-note", "heads on these routes:"));
    for (const [key, weight] of top) {
      const [layer, head] = key.split("/").map(Number);
      const b = h("button", "txm-flow-head", `L${layer} h${head}`);
      b.type = "button";
      Object.assign(b.dataset, { layer: String(layer), head: String(head) });
      b.title = `layer ${layer}, head ${head}: ${(weight * 100).toFixed(1)}% of the states it feeds, summed over the routes`;
      b.style.setProperty("--txm-head-color", cssColor(headColor(head, count, this.ctx.theme.dark)));
      b.addEventListener("click", () => this.ctx.store.set({ layer, head }));
      this.heads.append(b);
    }
  }

  destroy(): void {
    this.element.remove();
  }
}
