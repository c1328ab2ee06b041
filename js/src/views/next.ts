/**
 * The next-token distribution after the selected position (the last by default), recomputed
 * in the browser from the full-vocabulary logits: temperature, top-k and top-p controls, the
 * top candidates as bars, and a sample button that draws a token with a seeded generator.
 * The last position's logits come with the widget; others are fetched from Python on demand.
 */

import { getOrMake } from "../cache";
import { clear, errorMessage, h } from "../dom";
import { shownTokens, tokenString, visibleToken, type Internals } from "../internals";
import {
  DEFAULT_SAMPLING, drawToken, nextTokenDistribution, rankByLogit, seededRandom, softmax, type Distribution,
  type SamplingSettings,
} from "../sampling";
import { focusToken, type Selection } from "../state";
import { compareTable } from "./next-compare";
import type { Changes, PanelView, ViewContext } from "./view";

/** Candidates drawn as bars. */
export const BARS = 12;

interface Ranked {
  ranked: Int32Array;
  plain: Float64Array;
}

export class NextTokenView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "next token";
  readonly settings: SamplingSettings = { ...DEFAULT_SAMPLING };
  private readonly heading: HTMLElement;
  private readonly bars: HTMLElement;
  private readonly drawn: HTMLElement;
  private readonly kept: HTMLElement;
  private readonly seedControl: HTMLElement;
  /** Before and after an intervention (when the run shown is an intervened one). */
  private readonly compare: HTMLElement;
  private random: () => number;
  private position = -1;
  private dist: Distribution | null = null;
  private lastDraw = -1;
  private readonly ranks = new WeakMap<Float32Array, Ranked>();
  private destroyed = false;

  constructor(private readonly ctx: ViewContext, private readonly internals: Internals) {
    this.element = h("div", "txm-panel txm-inside txm-next");
    this.element.dataset.view = "next";
    this.heading = h("div", "txm-next-heading");
    const controls = h("div", "txm-inside-bar");
    const temperature = this.slider("temperature", 0.05, 2, 0.05, this.settings.temperature, (v) => (this.settings.temperature = v));
    const topK = this.number("top-k (0 = all)", 0, 1000, this.settings.topK, (v) => (this.settings.topK = v));
    const topP = this.slider("top-p", 0.05, 1, 0.05, this.settings.topP, (v) => (this.settings.topP = v));
    this.seedControl = this.number("seed", 0, 2 ** 31 - 1, 0, (v) => {
      this.random = seededRandom(v);
    });
    controls.append(temperature, topK, topP);
    const sampleBar = h("div", "txm-inside-bar");
    const sample = h("button", "txm-next-sample", "sample a token");
    sample.type = "button";
    sample.addEventListener("click", () => this.sample());
    this.drawn = h("span", "txm-next-draw");
    this.drawn.setAttribute("aria-live", "polite");
    sampleBar.append(sample, this.seedControl, this.drawn);
    this.kept = h("div", "txm-inside-note");
    this.bars = h("div", "txm-next-bars");
    this.compare = h("div", "txm-next-compare-host");
    this.element.append(this.heading, this.compare, controls, sampleBar, this.kept, this.bars);
    this.random = seededRandom(0);
  }

  private slider(label: string, min: number, max: number, step: number, value: number, set: (v: number) => void): HTMLElement {
    const wrap = h("label", "txm-next-control");
    const input = h("input");
    input.type = "range";
    Object.assign(input, { min: String(min), max: String(max), step: String(step), value: String(value) });
    input.dataset.control = label.split(" ")[0];
    const shown = h("span", "", String(value));
    input.addEventListener("input", () => {
      const v = Number(input.value);
      shown.textContent = String(v);
      set(v);
      this.recompute();
    });
    wrap.append(h("span", "", `${label} `), input, shown);
    return wrap;
  }

  private number(label: string, min: number, max: number, value: number, set: (v: number) => void): HTMLElement {
    const wrap = h("label", "txm-next-control");
    const input = h("input");
    input.type = "number";
    Object.assign(input, { min: String(min), max: String(max), step: "1", value: String(value) });
    input.dataset.control = label.split(" ")[0];
    input.addEventListener("change", () => {
      const v = Math.max(min, Math.min(max, Math.trunc(Number(input.value) || 0)));
      input.value = String(v);
      set(v);
      this.recompute();
    });
    wrap.append(h("span", "", `${label} `), input);
    return wrap;
  }

  needsAllLayers(): boolean {
    return false;
  }

  /** The position whose next token is shown: the selected one, else the last shown. */
  private target(s: Readonly<Selection>): number {
    const logits = this.internals.logits;
    if (!logits) return -1;
    const n = shownTokens(this.internals, logits.tokens);
    const focus = focusToken(s);
    return focus >= 0 && focus < n ? focus : n - 1;
  }

  update(s: Readonly<Selection>, _changes: Changes): void {
    const position = this.target(s);
    if (position !== this.position) {
      this.position = position;
      this.lastDraw = -1;
      this.drawn.textContent = "";
    }
    this.recompute();
  }

  private ranked(logits: Float32Array): Ranked {
    return getOrMake(this.ranks, logits, () => ({ ranked: rankByLogit(logits), plain: softmax(logits) }));
  }

  /** Redraw the distribution for the current position and settings (fetching logits if needed). */
  recompute(): void {
    const source = this.internals.logits;
    if (!source || this.position < 0) return;
    const position = this.position;
    const tokens = this.ctx.source.meta.sequences.input?.text ?? [];
    const ids = this.ctx.source.meta.sequences.input?.ids ?? [];
    const actual = position + 1 < tokens.length ? ids[position + 1] : -1;
    clear(this.heading);
    this.heading.append(h("span", "", `next token after #${position} `), h("strong", "", tokens[position] ?? ""));
    if (actual >= 0) this.heading.append(h("span", "txm-inside-note", ` · the text goes on with ${visibleToken(tokenString(this.internals, actual))}`));
    const logits = source.peek(position);
    if (!logits) {
      this.element.dataset.drawn = "0";
      this.kept.textContent = "loading the logits…";
      clear(this.bars);
      source.get(position).then(
        () => {
          if (!this.destroyed && this.position === position) this.recompute();
        },
        (err: unknown) => {
          if (this.destroyed) return;
          this.kept.textContent = `logits unavailable: ${errorMessage(err)}`;
          this.ctx.report(err);
        },
      );
      return;
    }
    this.showCompare(position, logits);
    const { ranked, plain } = this.ranked(logits);
    this.dist = nextTokenDistribution(logits, this.settings, ranked);
    this.kept.textContent = `${this.dist.ids.length} of ${logits.length} tokens can be drawn`;
    clear(this.bars);
    const shown = Math.min(BARS, this.dist.ids.length);
    const top = this.dist.probs[0] || 1;
    for (let i = 0; i < shown; i++) {
      const id = this.dist.ids[i], p = this.dist.probs[i];
      const label = h("span", "txm-next-token", visibleToken(tokenString(this.internals, id)));
      label.title = `id ${id} · probability before the controls ${(plain[id] * 100).toFixed(2)}%`;
      const bar = h("div", "txm-next-bar");
      bar.style.width = `${(p / top) * 100}%`;
      bar.dataset.id = String(id);
      if (id === this.lastDraw) bar.classList.add("txm-drawn");
      this.bars.append(label, bar, h("span", "txm-next-prob", `${(p * 100).toFixed(1)}%`));
    }
    this.element.dataset.drawn = "1";
  }

  /** Before and after, side by side, when an intervention is shown and the unintervened logits are here. */
  private showCompare(position: number, logits: Float32Array): void {
    clear(this.compare);
    const iv = this.ctx.interventions, baseline = iv?.baseline;
    if (!iv?.info) return;
    if (baseline && baseline.position === position) {
      this.compare.append(compareTable(this.internals, baseline.logits, logits, iv.info.label));
    } else {
      this.compare.append(h("div", "txm-inside-note", `${iv.info.label}: before and after are shown after the last token`));
    }
  }

  /** Draw one token from the current distribution and show it. */
  sample(): number {
    if (!this.dist || this.dist.ids.length === 0) return -1;
    const id = drawToken(this.dist, this.random());
    const i = this.dist.ids.indexOf(id);
    this.lastDraw = id;
    this.drawn.textContent = `drew ${visibleToken(tokenString(this.internals, id))} (${(this.dist.probs[i] * 100).toFixed(1)}%)`;
    this.drawn.dataset.id = String(id);
    for (const bar of Array.from(this.bars.querySelectorAll<HTMLElement>(".txm-next-bar"))) {
      bar.classList.toggle("txm-drawn", bar.dataset.id === String(id));
    }
    return id;
  }

  destroy(): void {
    this.destroyed = true;
    this.element.remove();
  }
}
