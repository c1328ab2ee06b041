/**
 * The matrix view's hover tooltip: query → key and the cell's value, with what the matrix shows.
 * A quantized value or a tile maximum is marked approximate and replaced by the exact value,
 * cut from the query's exact row (fetched from the kernel if it is not here).
 */

import { clear, h } from "../dom";
import type { Frame } from "../frame";
import { displayToken, formatWeight } from "../layout";
import { shownOfRow } from "../pooled";
import { showsRollout } from "../shown";
import type { AttentionSource, CellWindow, LayerData } from "../source";
import type { Selection, SelectionStore } from "../state";
import { drawnIndex, type DrawnCells } from "./matrix-cells";

/** The hovered cell: where it is in the window and where the pointer is. */
export interface TooltipAt {
  /** Shown row / column within the drawn window. */
  query: number;
  key: number;
  clientX: number;
  clientY: number;
}

function tokenSpan(text: string): HTMLElement {
  const el = h("span", "txm-tooltip-token", displayToken(text));
  el.dir = "auto";
  return el;
}

export class MatrixTooltip {
  readonly element: HTMLElement;

  constructor(private readonly ctx: { source: AttentionSource; store: SelectionStore }) {
    this.element = h("div", "txm-tooltip");
    this.element.hidden = true;
  }

  hide(): void {
    this.element.hidden = true;
  }

  /**
   * Describe cell `at` of window `w` of `drawn` (the selection `s` of `frame`), placed beside the
   * pointer inside `host` (the view's box).
   */
  show(s: Readonly<Selection>, frame: Frame, drawn: DrawnCells, w: CellWindow, at: TooltipAt, host: DOMRect): void {
    const { queries, keys, crop } = frame;
    const row = w.q0 + at.query, col = w.k0 + at.key;
    const idx = drawnIndex(drawn, at.query, at.key);
    const masked = drawn.mask ? !drawn.mask[idx] : false;
    const tip = this.element;
    clear(tip);
    const line = h("div", "txm-tooltip-main");
    const value = h("span", "txm-tooltip-value");
    const approx = drawn.approx && !masked && !s.showMask;
    value.textContent = masked ? "masked" : s.showMask ? "allowed" : (approx ? "≈ " : "") + formatWeight(drawn.matrix[idx]);
    if (approx) {
      value.classList.add("txm-approx");
      value.title = drawn.pool > 1 ? `max over a ${drawn.pool}×${drawn.pool} tile; exact value on its way` : "quantized value; exact value on its way";
    }
    line.append(tokenSpan(queries.text[row] ?? ""), h("span", "txm-tooltip-arrow", " → "), tokenSpan(keys.text[col] ?? ""), h("span", "", ": "), value);
    const what = s.head >= 0 ? `head ${s.head}` : `${s.aggregate} of ${s.heads.length} head${s.heads.length === 1 ? "" : "s"}`;
    const sub = h("div", "txm-tooltip-sub", `query ${crop.rows[row]} → key ${crop.cols[col]} · layer ${s.layer} · ${what}`);
    tip.append(line, sub);
    tip.hidden = false;
    if (approx && !showsRollout(s)) this.exactValue(value, s, frame, crop.rows[row], crop.cols[col]);
    let x = at.clientX - host.left + 14;
    const y = at.clientY - host.top + 14;
    const tw = tip.offsetWidth || 200;
    if (host.width > 0 && x + tw > host.width) x = Math.max(0, at.clientX - host.left - tw - 10);
    tip.style.left = `${x}px`;
    tip.style.top = `${y}px`;
  }

  /** Replace the approximate value in `el` by the exact one of (query, key), fetched if needed. */
  private exactValue(el: HTMLElement, s: Readonly<Selection>, frame: Frame, query: number, key: number): void {
    const source = this.ctx.source;
    const K = source.meta.sequences[frame.info.keys].text.length;
    const put = (row: LayerData) => {
      if (!el.isConnected && el.parentNode === null) return;
      el.textContent = formatWeight(shownOfRow(row.data, s.heads, s.head, K, key));
      el.classList.remove("txm-approx");
      el.title = "exact value";
    };
    const window = { q0: query, q1: query + 1, k0: 0, k1: K };
    const have = source.peekBlock(s.kind, s.layer, window);
    if (have) {
      put(have);
      return;
    }
    source.getBlock(s.kind, s.layer, window).then(
      (row) => {
        const now = this.ctx.store.get();
        if (now.kind === s.kind && now.layer === s.layer && now.head === s.head && now.heads === s.heads) put(row);
      },
      () => {
        el.title = "the exact value could not be fetched";
      },
    );
  }
}
