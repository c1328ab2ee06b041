/**
 * The logit lens: rows = embeddings then each layer, columns = positions; each cell is the
 * top token that row's hidden state predicts next (through the final norm and unembedding),
 * shaded by its probability. Hover a cell for its top 5; the selected token's column is outlined.
 * Python computes the lens for the columns shown (a window around the selected token), nearest
 * the selection first: columns not here yet show "…" while the tab says it is computing.
 */

import { cssColor, weightColor } from "../colors";
import { clear, errorMessage, h } from "../dom";
import { columnWindow, shownTokens, tokenString, visibleToken, type Internals, type LensStore } from "../internals";
import { focusToken, type Selection } from "../state";
import { heatGrid, linkColumns, markColumn } from "./heat";
import { rowLabels } from "./hidden";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

/** Columns the lens shows at once. */
export const LENS_COLUMNS = 96;

/** The top-k (token id, probability) of one row and position, most likely first; null until it has come. */
export function lensTop(lens: LensStore, row: number, position: number): { id: number; prob: number }[] | null {
  const column = lens.peek(position);
  if (!column) return null;
  const base = row * lens.k;
  return Array.from({ length: lens.k }, (_, i) => ({ id: column.ids[base + i], prob: column.probs[base + i] }));
}

/** `positions` ordered by distance from `focus` (nearest first), so the selected column comes first. */
export function byDistance(positions: number[], focus: number): number[] {
  return [...positions].sort((a, b) => Math.abs(a - focus) - Math.abs(b - focus) || a - b);
}

export class LensView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "logit lens";
  private readonly body: HTMLElement;
  private readonly detail: HTMLElement;
  private readonly note: HTMLElement;
  private readonly status: HTMLElement;
  private grid: HTMLElement | null = null;
  /** The cell under the pointer (row, position): its top-k fill the detail line. */
  private hovered: [number, number] | null = null;
  private window: [number, number] = [0, 0];
  private selection: Readonly<Selection> | null = null;
  private reported: Error | null = null;
  private readonly unlink: () => void;
  private readonly unsubscribe: () => void;

  constructor(private readonly ctx: ViewContext, private readonly internals: Internals) {
    this.element = h("div", "txm-panel txm-inside txm-lens");
    this.element.dataset.view = "lens";
    const bar = h("div", "txm-inside-bar");
    this.note = h("span", "txm-inside-note");
    this.status = h("span", "txm-inside-note txm-lens-status");
    this.status.setAttribute("aria-live", "polite");
    bar.append(h("span", "", "each layer's next-token guess (final norm + unembedding), shaded by probability"), this.note, this.status);
    this.detail = h("div", "txm-lens-detail");
    this.body = h("div", "txm-lens-body");
    this.element.append(bar, this.body, this.detail);
    this.unlink = linkColumns(this.body, ctx.store, (row, token) => {
      this.hovered = row >= 0 ? [row, token] : null;
      if (this.hovered) this.showDetail(row, token);
    });
    const lens = internals.lens;
    this.unsubscribe = lens ? lens.subscribe((err) => this.arrived(err)) : () => {};
  }

  needsAllLayers(): boolean {
    return false;
  }

  /** A reply (or a failure) came: redraw the window with what is here now. */
  private arrived(err?: Error): void {
    if (err && err !== this.reported) {
      this.reported = err;
      this.ctx.report(err);
    }
    if (this.selection && !this.element.hidden) this.draw(this.selection);
    else this.showStatus();
  }

  /** The top-k of one cell as text, in the detail line. */
  private showDetail(row: number, position: number): void {
    const lens = this.internals.lens;
    if (!lens) return;
    const tokens = this.ctx.source.meta.sequences.input?.text ?? [];
    const where = `${row === 0 ? "embeddings" : `layer ${row}`}, after #${position} ${tokens[position] ?? ""}: `;
    const top = lensTop(lens, row, position);
    this.detail.textContent = where + (top
      ? top.map(({ id, prob }) => `${visibleToken(tokenString(this.internals, id))} ${(prob * 100).toFixed(1)}%`).join(" · ")
      : lens.error(position) ? "unavailable" : "computing…");
  }

  /** "computing…", an error with a retry button, or nothing once the window is here. */
  private showStatus(): void {
    const lens = this.internals.lens;
    if (!lens) return;
    clear(this.status);
    const [a, b] = this.window;
    let here = 0, failed: Error | undefined;
    for (let t = a; t < b; t++) {
      if (lens.peek(t)) here++;
      failed ??= lens.error(t);
    }
    const done = here === b - a;
    this.element.dataset.drawn = done && b > a ? "1" : "0";
    if (failed) {
      this.element.dataset.state = "error";
      const retry = h("button", "txm-lens-retry", "retry");
      retry.type = "button";
      retry.addEventListener("click", () => {
        lens.retry();
        this.reported = null;
        if (this.selection) this.update(this.selection, "all");
      });
      this.status.append(h("span", "txm-lens-error", ` · logit lens unavailable: ${errorMessage(failed)} `), retry);
    } else if (!done) {
      this.element.dataset.state = "computing";
      this.status.textContent = ` · computing… ${here} of ${b - a} positions`;
    } else {
      this.element.dataset.state = "done";
    }
  }

  private draw(s: Readonly<Selection>): void {
    const lens = this.internals.lens;
    if (!lens) return;
    const focus = focusToken(s);
    const [a, b] = this.window;
    const n = shownTokens(this.internals, lens.tokens);
    const columns = Array.from({ length: b - a }, (_, i) => a + i);
    const tokens = this.ctx.source.meta.sequences.input?.text ?? [];
    const dark = this.ctx.theme.dark;
    const gen = this.internals.generation;
    clear(this.body);
    this.grid = heatGrid({
      rows: rowLabels(lens.layers), columns, tokens, generatedFrom: gen ? gen.prompt : Infinity,
      cell: (r, t) => {
        const where = `${r === 0 ? "embeddings" : `layer ${r}`}, after #${t} ${tokens[t] ?? ""}\n`;
        const top = lensTop(lens, r, t);
        if (!top) return { background: "transparent", text: "…", title: where + (lens.error(t) ? "unavailable" : "computing…") };
        const p = top[0].prob;
        return {
          background: cssColor(weightColor(Math.sqrt(p), dark)),
          color: !dark && p > 0.3 ? "#fff" : undefined,
          text: visibleToken(tokenString(this.internals, top[0].id)),
          title: where + top.map(({ id, prob }) => `${visibleToken(tokenString(this.internals, id))}  ${(prob * 100).toFixed(1)}%`).join("\n"),
        };
      },
    });
    this.body.append(this.grid);
    this.note.textContent = b - a < n ? `positions ${a}–${b - 1} of ${n}` : "";
    markColumn(this.grid, focus);
    this.showStatus();
    if (this.hovered && s.hover === this.hovered[1]) {
      this.showDetail(this.hovered[0], this.hovered[1]);
    } else {
      this.hovered = null;
      this.showDetail(lens.layers, focus >= 0 && focus < n ? focus : n - 1);
    }
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    const lens = this.internals.lens;
    if (!lens) return;
    this.selection = s;
    const focus = focusToken(s);
    const n = shownTokens(this.internals, lens.tokens);
    const win = columnWindow(n, focus, LENS_COLUMNS);
    const same = this.grid && win[0] === this.window[0] && win[1] === this.window[1];
    if (this.grid && same && focusOnly(changes)) {
      markColumn(this.grid, focus);
      if (this.hovered && s.hover === this.hovered[1]) this.showDetail(this.hovered[0], this.hovered[1]);
      else this.showDetail(lens.layers, focus >= 0 && focus < n ? focus : n - 1);
      return;
    }
    this.window = win;
    const columns = Array.from({ length: win[1] - win[0] }, (_, i) => win[0] + i);
    lens.want(byDistance(columns, focus >= 0 && focus < n ? focus : n - 1));
    this.draw(s);
  }

  destroy(): void {
    this.unsubscribe();
    this.unlink();
    this.element.remove();
  }
}
