/**
 * The toolbar's weighting switch: raw attention | value-weighted (each row a_ij ||f(x_j)||, normalised
 * to sum to 1; Kobayashi et al. 2020). It drives the selection's `weighting`, which the matrix, arcs,
 * overview, heads, layers and statistics all follow. Where value weighting cannot be had the value
 * button is disabled and a visible note says why and what to do.
 */

import { h, listenGuarded } from "../dom";
import { canWeighByValue, type Selection, type Weighting } from "../state";
import { kindInfo, type KindInfo, type Meta } from "../wire";
import type { ViewContext } from "./view";

/** Why `info` cannot be value-weighted, in words that say what to do; "" when it can. */
export function whyNoValueWeighting(meta: Meta, info: KindInfo, live: boolean): string {
  if (canWeighByValue(meta, info)) return "";
  if (info.streamed) {
    return "value weighting needs every weight of a layer, and this long input was captured reduced: capture " +
      "fewer tokens (max_tokens=… in Python, --max-tokens in %explain) to weigh attention by value";
  }
  if (!live) return "this report holds no value norms: save it from a trace of a transformers model";
  return "value weighting needs the model itself: capture a transformers model (tx_magic.capture, %explain); " +
    "arrays and hook captures hold only the weights";
}

const LABELS: Record<Weighting, [string, string]> = {
  raw: ["raw", "the attention weights as the model computed them"],
  value: ["value", "value-weighted: each weight times the norm of what the head moves from that key, " +
    "||a_ij f(x_j)||, each row normalised to sum to 1 (Kobayashi et al. 2020)"],
};

export class WeightingSwitch {
  readonly element: HTMLElement;
  private readonly buttons = new Map<Weighting, HTMLButtonElement>();
  private readonly note: HTMLElement;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext) {
    this.element = h("span", "txm-group txm-weighting");
    this.element.setAttribute("role", "group");
    this.element.setAttribute("aria-label", "weigh attention by");
    this.element.append(h("span", "txm-label", "Weigh"));
    for (const w of ["raw", "value"] as const) {
      const b = h("button", "txm-seg txm-weigh", LABELS[w][0]);
      b.type = "button";
      b.dataset.weighting = w;
      b.title = LABELS[w][1];
      this.cleanups.push(listenGuarded(b, "click", () => this.ctx.store.set({ weighting: w }), (err) => this.ctx.report(err)));
      this.buttons.set(w, b);
      this.element.append(b);
    }
    this.note = h("span", "txm-muted txm-weighting-note");
    this.element.append(this.note);
  }

  update(s: Readonly<Selection>): void {
    const meta = this.ctx.source.meta;
    const why = whyNoValueWeighting(meta, kindInfo(meta, s.kind), this.ctx.source.live);
    for (const [w, b] of this.buttons) {
      const on = s.weighting === w;
      b.classList.toggle("txm-on", on);
      b.setAttribute("aria-pressed", String(on));
    }
    const value = this.buttons.get("value");
    if (value) {
      value.disabled = why !== "";
      value.title = why || LABELS.value[1];
    }
    // A long input gets its reason in sight, not only in a tooltip; elsewhere the tooltip is enough.
    this.note.textContent = why && kindInfo(meta, s.kind).streamed ? "value: n/a for this long input (hover for why)" : "";
    this.note.title = why;
    this.element.hidden = why !== "" && !kindInfo(meta, s.kind).streamed && !(meta.analyses && Object.keys(meta.analyses).length);
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
