/**
 * Editing one attention weight from the matrix view (Alt-click, or Ctrl/Cmd-click, on a cell): a small
 * popover to set the weight (the rest of its row is rescaled to sum to 1) or block the key (weight 0).
 * The kernel reruns with the edit and every view, the Next token tab included, shows the new run.
 */

import { clear, h, listenGuarded } from "../dom";
import type { Interventions } from "../interventions";

export interface EditTarget {
  kind: string;
  layer: number;
  /** The head shown alone in the matrix, or -1 (an aggregate: no single weight to edit). */
  head: number;
  query: number;
  key: number;
  /** The weight shown, or NaN when unknown. */
  weight: number;
  queryText: string;
  keyText: string;
}

export class WeightEditor {
  readonly element: HTMLElement;
  private readonly cleanups: (() => void)[] = [];
  private target: EditTarget | null = null;

  constructor(private readonly interventions: Interventions, private readonly report: (err: unknown) => void) {
    this.element = h("div", "txm-weight-editor");
    this.element.setAttribute("role", "dialog");
    this.element.hidden = true;
    this.on(this.element, "keydown", (e) => {
      if ((e as KeyboardEvent).key === "Escape") this.close();
      e.stopPropagation(); // typing a number must not move the focus token
    });
  }

  private on(target: EventTarget, type: string, fn: (e: Event) => void): void {
    this.cleanups.push(listenGuarded(target, type, fn, this.report));
  }

  /** Show the editor for `t` at (x, y) inside its host. */
  open(t: EditTarget, x: number, y: number): void {
    this.target = t;
    const el = this.element;
    clear(el);
    el.style.left = `${x}px`;
    el.style.top = `${y}px`;
    const title = h("div", "txm-weight-editor-title");
    title.append(h("span", "", `L${t.layer}${t.head >= 0 ? `H${t.head}` : ""} · `), h("span", "txm-tooltip-token", t.queryText),
      h("span", "", " → "), h("span", "txm-tooltip-token", t.keyText));
    el.append(title);
    if (t.head < 0) {
      el.append(h("div", "txm-hint", "show one head in the matrix (0-9, or the Matrix menu) to edit its weights"));
    } else if (!this.interventions.live) {
      el.append(h("div", "txm-hint", "no kernel here to rerun the model"));
    } else {
      const input = h("input", "txm-weight-input");
      input.type = "number";
      Object.assign(input, { min: "0", max: "1", step: "0.01" });
      input.value = Number.isFinite(t.weight) ? t.weight.toFixed(3) : "0";
      input.setAttribute("aria-label", "new weight (0..1)");
      const set = h("button", "txm-step txm-weight-set", "set");
      set.type = "button";
      const block = h("button", "txm-step txm-weight-block", "block key");
      block.type = "button";
      block.title = "weight 0: the query no longer attends to this key";
      const row = h("div", "txm-weight-editor-row");
      row.append(h("span", "txm-label", "weight"), input, set, block);
      el.append(row, h("div", "txm-hint", "the rest of the row is rescaled to sum to 1; the model reruns"));
      this.on(set, "click", () => this.submit(Number(input.value)));
      this.on(block, "click", () => this.submit(0));
      this.on(input, "keydown", (e) => {
        if ((e as KeyboardEvent).key === "Enter") this.submit(Number(input.value));
      });
    }
    const cancel = h("button", "txm-link txm-weight-cancel", "cancel");
    cancel.type = "button";
    this.on(cancel, "click", () => this.close());
    el.append(cancel);
    el.hidden = false;
    (el.querySelector("input") as HTMLInputElement | null)?.focus();
  }

  private submit(weight: number): void {
    const t = this.target;
    if (!t || t.head < 0) return;
    if (!(weight >= 0 && weight <= 1)) {
      this.report(new Error(`a weight is a number in 0..1 (0 blocks the key), got ${weight}`));
      return;
    }
    this.close();
    this.interventions.edit({ kind: t.kind, layer: t.layer, head: t.head, query: t.query, key: t.key, weight });
  }

  close(): void {
    this.element.hidden = true;
    this.target = null;
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
