/**
 * The arc view's two token columns: one label per shown token (queries left, keys right), the
 * focused label's mark, the other column's labels tinted by weight, which label a pointer event
 * is on, and where to scroll so a focused row is in sight.
 */

import { clear, h } from "../dom";
import type { Frame } from "../frame";
import { displayToken } from "../layout";
import type { Side } from "../state";

/** The token label `target` is on, if it is inside `within`. */
function tokenElement(target: EventTarget | null, within: Element): Element | null {
  const el = target as Element | null;
  const token = el && typeof el.closest === "function" ? el.closest(".txm-token") : null;
  return token && within.contains(token) ? token : null;
}

/** The token (its index in its sequence, its side) whose label `e` happened on, inside `within`. */
export function tokenOf(e: Event, within: Element): { index: number; side: Side } | null {
  const token = tokenElement(e.target, within);
  if (!token) return null;
  const side = token.getAttribute("data-side");
  const index = Number(token.getAttribute("data-index"));
  if ((side !== "query" && side !== "key") || !Number.isInteger(index)) return null;
  return { index, side };
}

/** Whether the pointer, leaving a label for `to`, is still on a token label inside `within`. */
export function stillOnToken(to: EventTarget | null, within: Element): boolean {
  return tokenElement(to, within) !== null;
}

/**
 * The scroll offset that brings shown row `at` into the middle of a `viewH` px view of `rows`
 * rows `rowH` px high, or null when it is at least partly in sight at `top` (or `at` is -1).
 */
export function revealTop(at: number, top: number, viewH: number, rowH: number, rows: number): number | null {
  const y = at * rowH;
  // Only rows entirely out of sight: a label hovered here is always partly visible, and
  // scrolling under the pointer would move the hover to another row.
  if (at < 0 || (y + rowH > top && y < top + viewH)) return null;
  return Math.max(0, Math.min(rows * rowH - viewH, y + rowH / 2 - viewH / 2));
}

function tokenLabel(text: string, special: boolean, side: Side, i: number): HTMLElement {
  const el = h("div", special ? "txm-token txm-special" : "txm-token", displayToken(text));
  el.dataset.side = side;
  el.dataset.index = String(i);
  el.dir = "auto";
  el.title = `${side} ${i}: ${text}`;
  return el;
}

export class TokenColumns {
  readonly queryCol = h("div", "txm-arc-col txm-arc-queries");
  readonly keyCol = h("div", "txm-arc-col txm-arc-keys");
  private queryEls: HTMLElement[] = [];
  private keyEls: HTMLElement[] = [];
  private focused: HTMLElement | null = null;
  private tinted = new Set<HTMLElement>();

  /** One label per shown token; data-index is the token's position in its sequence. */
  build(frame: Frame): void {
    const { queries, keys, crop } = frame;
    this.focused = null;
    this.tinted.clear();
    clear(this.queryCol);
    clear(this.keyCol);
    this.queryEls = queries.text.map((t, i) => tokenLabel(t, queries.special[i], "query", crop.rows[i]));
    this.keyEls = keys.text.map((t, i) => tokenLabel(t, keys.special[i], "key", crop.cols[i]));
    this.queryCol.append(...this.queryEls);
    this.keyCol.append(...this.keyEls);
  }

  private labels(side: Side): HTMLElement[] {
    return side === "query" ? this.queryEls : this.keyEls;
  }

  /** Mark the label of shown row `index` of column `side` as focused (-1: none). */
  mark(index: number, side: Side): void {
    const el = index >= 0 ? this.labels(side)[index] ?? null : null;
    if (el === this.focused) return;
    this.focused?.classList.remove("txm-focus");
    el?.classList.add("txm-focus");
    this.focused = el;
  }

  /** Tint the labels of column `side` by `weights` (shown row -> weight); untint the rest. */
  tint(side: Side, weights: ReadonlyMap<number, number>): void {
    const els = this.labels(side);
    const next = new Map<HTMLElement, number>();
    for (const [i, w] of weights) next.set(els[i], w);
    for (const el of this.tinted) {
      if (next.has(el)) continue;
      el.style.removeProperty("--txm-weight");
      el.classList.remove("txm-tinted");
    }
    for (const [el, w] of next) {
      el.style.setProperty("--txm-weight", String(Math.round(w * 1000) / 1000));
      el.classList.add("txm-tinted");
    }
    this.tinted = new Set(next.keys());
  }
}
