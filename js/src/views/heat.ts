/**
 * A layers x tokens grid of coloured cells (the hidden-state and logit-lens views): one column
 * per token, linked to the shared selection (hover focuses a token, click pins it) with the
 * focused token's column outlined. DOM cells with text set through textContent only.
 */

import { h } from "../dom";
import type { SelectionStore } from "../state";

export interface HeatCell {
  /** CSS background colour. */
  background: string;
  /** Tooltip text (exact values). */
  title: string;
  /** Text inside the cell (the lens's top token), if any. */
  text?: string;
  /** CSS text colour, for text on dark backgrounds. */
  color?: string;
}

export interface HeatGridSpec {
  /** Row labels, top to bottom. */
  rows: string[];
  /** Token indices of the columns, left to right. */
  columns: number[];
  /** Display text of every token. */
  tokens: string[];
  /** First generated token (columns from here are styled as generated), or Infinity. */
  generatedFrom: number;
  cell(row: number, token: number): HeatCell;
}

/** The grid element: a header row of tokens, then one row of cells per label. */
export function heatGrid(spec: HeatGridSpec): HTMLElement {
  const grid = h("div", "txm-heat");
  grid.style.gridTemplateColumns = `max-content repeat(${spec.columns.length}, minmax(14px, max-content))`;
  grid.append(h("div", "txm-heat-label"));
  for (const t of spec.columns) {
    const label = h("div", "txm-heat-token", spec.tokens[t] ?? "");
    label.dataset.col = String(t);
    label.title = `#${t} ${spec.tokens[t] ?? ""}${t >= spec.generatedFrom ? " (generated)" : ""}`;
    if (t >= spec.generatedFrom) label.classList.add("txm-generated");
    grid.append(label);
  }
  spec.rows.forEach((name, r) => {
    grid.append(h("div", "txm-heat-label", name));
    for (const t of spec.columns) {
      const c = spec.cell(r, t);
      const cell = h("div", "txm-heat-cell", c.text);
      cell.dataset.col = String(t);
      cell.dataset.row = String(r);
      cell.style.background = c.background;
      if (c.color) cell.style.color = c.color;
      cell.title = c.title;
      grid.append(cell);
    }
  });
  return grid;
}

/** Outline the column of `token` (-1: none). */
export function markColumn(grid: HTMLElement, token: number): void {
  for (const el of Array.from(grid.querySelectorAll(".txm-sel"))) el.classList.remove("txm-sel");
  if (token < 0) return;
  for (const el of Array.from(grid.querySelectorAll(`[data-col="${token}"]`))) el.classList.add("txm-sel");
}

/** Hovering a column focuses its token, leaving clears the hover, clicking pins (or unpins) it. */
export function linkColumns(host: HTMLElement, store: SelectionStore, onCell?: (row: number, token: number) => void): () => void {
  const colOf = (e: Event): [number, number] | null => {
    const el = (e.target as Element | null)?.closest?.("[data-col]") as HTMLElement | null;
    if (!el || !host.contains(el)) return null;
    return [el.dataset.row === undefined ? -1 : Number(el.dataset.row), Number(el.dataset.col)];
  };
  const over = (e: Event) => {
    const hit = colOf(e);
    if (!hit) return;
    onCell?.(hit[0], hit[1]);
    store.set({ hover: hit[1], hoverSide: "query" });
  };
  const leave = () => store.set({ hover: -1 });
  const click = (e: Event) => {
    const hit = colOf(e);
    if (!hit) return;
    const s = store.get();
    const pinned = s.pinned === hit[1] && s.pinnedSide === "query";
    store.set({ pinned: pinned ? -1 : hit[1], pinnedSide: "query" });
  };
  host.addEventListener("mouseover", over);
  host.addEventListener("mouseleave", leave);
  host.addEventListener("click", click);
  return () => {
    host.removeEventListener("mouseover", over);
    host.removeEventListener("mouseleave", leave);
    host.removeEventListener("click", click);
  };
}
