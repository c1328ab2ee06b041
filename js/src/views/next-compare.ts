/**
 * Before and after an intervention, side by side: the next-token distribution of the model's own run
 * and of the intervened one at the same position (probabilities at temperature 1, from the exact
 * logits), with the change of each candidate's probability and logit. The candidates are the top
 * tokens of either run.
 */

import { h } from "../dom";
import { tokenString, visibleToken, type Internals } from "../internals";
import { softmax } from "../sampling";

export interface CompareRow {
  id: number;
  before: number;
  after: number;
  /** after - before, probability. */
  delta: number;
  /** after - before, logit. */
  logitDelta: number;
}

/** The top `n` tokens of either run, ordered by their probability after. */
export function compareRows(before: Float32Array, after: Float32Array, n = 8): CompareRow[] {
  if (before.length !== after.length) throw new Error(`tx_magic: ${before.length} logits before, ${after.length} after`);
  const pb = softmax(before), pa = softmax(after);
  const top = (p: Float64Array) => Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b).slice(0, n);
  const ids = [...new Set([...top(pa), ...top(pb)])];
  ids.sort((a, b) => pa[b] - pa[a] || pb[b] - pb[a] || a - b);
  return ids.map((id) => ({ id, before: pb[id], after: pa[id], delta: pa[id] - pb[id], logitDelta: after[id] - before[id] }));
}

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;
const signed = (x: number, digits: number, unit = "") => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}${unit}`;

/** The table: token, before, after, Δ probability (points), Δ logit; `label` says what was done. */
export function compareTable(internals: Internals, before: Float32Array, after: Float32Array, label: string): HTMLElement {
  const box = h("div", "txm-next-compare");
  box.append(h("div", "txm-next-compare-title", `before → after ${label} (probabilities at temperature 1)`));
  const table = h("table", "txm-next-compare-table");
  const head = h("tr");
  for (const t of ["token", "before", "after", "Δ", "Δ logit"]) head.append(h("th", "", t));
  table.append(head);
  const rows = compareRows(before, after);
  const top = Math.max(1e-12, ...rows.map((r) => Math.max(r.before, r.after)));
  for (const r of rows) {
    const tr = h("tr");
    tr.dataset.id = String(r.id);
    const bar = (p: number, cls: string) => {
      const td = h("td", `txm-num ${cls}`, pct(p));
      td.style.setProperty("--txm-bar", `${Math.round((100 * p) / top)}%`);
      return td;
    };
    const delta = h("td", `txm-num ${r.delta >= 0 ? "txm-up" : "txm-down"}`, signed(r.delta * 100, 1, " pp"));
    tr.append(h("td", "txm-next-token", visibleToken(tokenString(internals, r.id))), bar(r.before, "txm-before"),
      bar(r.after, "txm-after"), delta, h("td", "txm-num", signed(r.logitDelta, 2)));
    table.append(tr);
  }
  box.append(table);
  return box;
}
