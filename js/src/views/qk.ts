/**
 * The Q/K tab, bertviz's neuron view for any model: for the focused query token and one head, its query
 * vector and every key vector as colour strips (one cell per dimension, red positive, blue negative),
 * their elementwise product q ⊙ k, its sum times the scale (the score), and the softmax of the scores
 * over the allowed keys, which is the head's attention row. For rotary models (Llama, Qwen...) the score
 * without the rotation sits beside it, and heads that read the same key/value head (grouped KV) are
 * marked in the head row. Vectors come from Python (REQUEST_QUERIES_KEYS), as the model used them.
 */

import { Answers, offersFor, type AnalysisFetchers } from "../analyses";
import { clear, errorMessage, h, prepareCanvas } from "../dom";
import { focusOf, type Selection } from "../state";
import { ANALYSIS_QK, kindInfo, type QueriesKeys } from "../wire";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

const ROW = 14;
const CELL = 5;
/** Keys listed at most (beyond: the strongest by score). */
export const MAX_KEYS = 256;

/** The head shown: the matrix's single head, else the first selected one, else 0. */
export function shownHead(s: Readonly<Selection>): number {
  return s.head >= 0 ? s.head : (s.heads[0] ?? 0);
}

/** One head's scores q.k * scale (and without the rotation), q ⊙ k per key, and the softmax over allowed keys. */
export function headScores(qk: QueriesKeys, head: number, allowed: (key: number) => boolean): {
  scores: Float64Array; unrotated: Float64Array | null; softmax: Float64Array;
} {
  const { dim: d, keys: n, scale } = qk;
  const g = qk.groups[head];
  const dot = (q: Float32Array, k: Float32Array, j: number) => {
    let sum = 0;
    for (let i = 0; i < d; i++) sum += q[head * d + i] * k[(g * n + j) * d + i];
    return sum * scale;
  };
  const scores = new Float64Array(n), softmax = new Float64Array(n);
  const unrotated = qk.unrotated ? new Float64Array(n) : null;
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    scores[j] = dot(qk.q, qk.k, j);
    if (unrotated && qk.unrotated) unrotated[j] = dot(qk.unrotated.q, qk.unrotated.k, j);
    if (allowed(j)) max = Math.max(max, scores[j]);
  }
  let total = 0;
  for (let j = 0; j < n; j++) {
    softmax[j] = allowed(j) ? Math.exp(scores[j] - max) : 0;
    total += softmax[j];
  }
  for (let j = 0; j < n; j++) softmax[j] = total > 0 ? softmax[j] / total : 0;
  return { scores, unrotated, softmax };
}

function diverging(v: number, dark: boolean): string {
  const t = Math.max(-1, Math.min(1, v));
  const base = dark ? [30, 30, 34] : [250, 250, 250];
  const end = t >= 0 ? [214, 39, 40] : [31, 119, 180];
  const a = Math.abs(t);
  return `rgb(${base.map((b, i) => Math.round(b + (end[i] - b) * a)).join(",")})`;
}

export class QueriesKeysView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Q/K";
  private readonly header: HTMLElement;
  private readonly headRow: HTMLElement;
  private readonly body: HTMLElement;
  private readonly answers: Answers<QueriesKeys>;
  private selection: Readonly<Selection> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly ctx: ViewContext, private readonly fetchers: AnalysisFetchers) {
    this.element = h("div", "txm-panel txm-inside txm-qk");
    this.element.dataset.view = "qk";
    this.header = h("div", "txm-inside-bar txm-qk-header");
    this.headRow = h("div", "txm-qk-heads");
    this.body = h("div", "txm-qk-body");
    this.element.append(this.header, this.headRow, this.body);
    this.answers = new Answers(() => {
      if (this.selection && !this.element.hidden) this.draw(this.selection);
    });
  }

  needsAllLayers(): boolean {
    return false;
  }

  private query(s: Readonly<Selection>): number {
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const n = this.ctx.source.meta.sequences[info.queries].text.length;
    const f = focusOf(s);
    return f.index >= 0 && f.index < n && (f.side === "query" || info.queries === info.keys) ? f.index : n - 1;
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    this.selection = s;
    if (this.timer) clearTimeout(this.timer);
    // Hovering sweeps across tokens: ask for the one the pointer rests on.
    if (focusOnly(changes)) this.timer = setTimeout(() => this.draw(s), 120);
    else this.draw(s);
  }

  private draw(s: Readonly<Selection>): void {
    const meta = this.ctx.source.meta;
    const fetch = this.fetchers.queriesKeys;
    if (!offersFor(meta, s.kind, ANALYSIS_QK) || !fetch) {
      this.state("none", `no queries and keys for ${s.kind} attention: they need a transformers model (and a live kernel)`);
      return;
    }
    const query = this.query(s);
    const key = `${s.kind}/${s.layer}/${query}`;
    this.answers.want(key, () => fetch(s.kind, s.layer, query));
    const qk = this.answers.peek(key), failed = this.answers.error(key);
    if (failed) {
      this.state("error", `queries and keys unavailable: ${errorMessage(failed)}`);
      return;
    }
    if (!qk) {
      this.state("computing", `fetching the queries and keys of layer ${s.layer}…`);
      return;
    }
    this.render(s, qk);
  }

  private state(state: string, text: string): void {
    this.element.dataset.state = state;
    this.element.dataset.drawn = "0";
    clear(this.header);
    this.header.append(h("span", "txm-inside-note", text));
    if (state !== "computing") {
      clear(this.body);
      clear(this.headRow);
    }
  }

  private render(s: Readonly<Selection>, qk: QueriesKeys): void {
    const meta = this.ctx.source.meta;
    const info = kindInfo(meta, s.kind);
    const queries = meta.sequences[info.queries].text, keys = meta.sequences[info.keys].text;
    const head = Math.min(shownHead(s), qk.heads - 1);
    const mask = this.ctx.frames.mask(info);
    const allowed = (j: number) => !mask || mask[qk.query * keys.length + j] === 1;
    const { scores, unrotated, softmax } = headScores(qk, head, allowed);
    const g = qk.groups[head];
    const shared = qk.groups.map((x, i) => (x === g ? i : -1)).filter((i) => i >= 0);
    clear(this.header);
    this.header.append(h("span", "", `query #${qk.query} “${queries[qk.query] ?? ""}” · layer ${qk.layer} · head ${head}`),
      h("span", "txm-inside-note", `score = q·k × ${qk.scale.toPrecision(4)}; softmax over the allowed keys = the attention row` +
        (qk.kvHeads < qk.heads ? ` · reads key/value head ${g}, shared by heads ${shared.join(", ")}` : "")));
    this.drawHeads(qk, head);
    const order = Array.from({ length: qk.keys }, (_, j) => j).filter(allowed);
    const listed = order.length <= MAX_KEYS ? order
      : [...order].sort((a, b) => scores[b] - scores[a]).slice(0, MAX_KEYS).sort((a, b) => a - b);
    const d = qk.dim;
    const q = qk.q.subarray(head * d, (head + 1) * d);
    let most = 1e-12, mostProduct = 1e-12;
    for (let i = 0; i < d; i++) most = Math.max(most, Math.abs(q[i]));
    for (const j of listed) for (let i = 0; i < d; i++) {
      const kv = qk.k[(g * qk.keys + j) * d + i];
      most = Math.max(most, Math.abs(kv));
      mostProduct = Math.max(mostProduct, Math.abs(kv * q[i]));
    }
    const dark = this.ctx.theme.dark;
    const width = 2 * d * CELL + 12, height = (listed.length + 1) * ROW;
    const canvas = h("canvas", "txm-qk-strips");
    const g2 = prepareCanvas(canvas, width, height).ctx;
    if (g2) {
      for (let i = 0; i < d; i++) {
        g2.fillStyle = diverging(q[i] / most, dark);
        g2.fillRect(i * CELL, 1, CELL, ROW - 2);
      }
      listed.forEach((j, r) => {
        for (let i = 0; i < d; i++) {
          const kv = qk.k[(g * qk.keys + j) * d + i];
          g2.fillStyle = diverging(kv / most, dark);
          g2.fillRect(i * CELL, (r + 1) * ROW + 1, CELL, ROW - 2);
          g2.fillStyle = diverging((kv * q[i]) / mostProduct, dark);
          g2.fillRect(d * CELL + 12 + i * CELL, (r + 1) * ROW + 1, CELL, ROW - 2);
        }
      });
    }
    const labels = h("div", "txm-qk-col");
    const numbers = h("div", "txm-qk-col txm-qk-numbers");
    labels.append(h("div", "txm-qk-row txm-qk-q", `q  #${qk.query} ${queries[qk.query] ?? ""}`));
    numbers.append(h("div", "txm-qk-row txm-inside-note", unrotated ? "score · w/o rotation · softmax" : "score · softmax"));
    for (const j of listed) {
      const label = h("div", "txm-qk-row", `k  #${j} ${keys[j] ?? ""}`);
      label.dir = "auto";
      labels.append(label);
      const row = h("div", "txm-qk-row");
      row.dataset.key = String(j);
      row.dataset.softmax = softmax[j].toFixed(6);
      row.dataset.score = scores[j].toFixed(6);
      const bar = h("span", "txm-qk-bar");
      bar.style.width = `${Math.round(softmax[j] * 60)}px`;
      row.append(h("span", "txm-qk-score", scores[j].toFixed(2)),
        ...(unrotated ? [h("span", "txm-qk-score txm-qk-unrotated", unrotated[j].toFixed(2))] : []),
        bar, h("span", "txm-qk-prob", `${(softmax[j] * 100).toFixed(1)}%`));
      numbers.append(row);
    }
    clear(this.body);
    this.body.append(h("div", "txm-inside-note", `strips, one cell per dimension (red > 0 > blue): the query, then each key (left) ` +
      `and q ⊙ k (right), whose sum × scale is the score`));
    const grid = h("div", "txm-qk-grid");
    grid.append(labels, canvas, numbers);
    this.body.append(grid);
    if (listed.length < order.length) this.body.append(h("div", "txm-inside-note", `the ${listed.length} highest-scoring of ${order.length} keys`));
    Object.assign(this.element.dataset, { state: "done", drawn: "1", query: String(qk.query), head: String(head),
      layer: String(qk.layer), rotary: String(Boolean(qk.unrotated)) });
  }

  /** One button per head; those reading the same key/value head as the shown one are marked. */
  private drawHeads(qk: QueriesKeys, head: number): void {
    clear(this.headRow);
    for (let x = 0; x < qk.heads; x++) {
      const b = h("button", "txm-qk-head", `h${x}`);
      b.type = "button";
      b.dataset.head = String(x);
      b.dataset.kv = String(qk.groups[x]);
      b.classList.toggle("txm-on", x === head);
      b.classList.toggle("txm-shared", qk.groups[x] === qk.groups[head] && qk.kvHeads < qk.heads);
      b.title = `head ${x}${qk.kvHeads < qk.heads ? `, reads key/value head ${qk.groups[x]}` : ""}`;
      b.addEventListener("click", () => this.ctx.store.set({ head: x }));
      this.headRow.append(b);
    }
  }

  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.element.remove();
  }
}
