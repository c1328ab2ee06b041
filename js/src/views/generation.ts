/**
 * Generation steps: a scrubber over the generated tokens. At step s (0 = the prompt alone) the
 * views beside attention show tokens up to prompt + s, and the newest shown token is pinned in
 * the shared selection, so the arc and matrix views focus its attention to everything before
 * it (with causal attention, exactly the row the model computed at that step). The strip here
 * shades each earlier token by that attention (the selected layer, head or mean of heads).
 */

import { getOrMake } from "../cache";
import { cssColor, weightColor, weightScale } from "../colors";
import { clear, h } from "../dom";
import { visibleToken, type GenerationInfo, type Internals } from "../internals";
import type { Frame } from "../frame";
import type { LayerData } from "../source";
import type { SequenceInfo } from "../wire";
import type { Selection } from "../state";
import type { Changes, PanelView, ViewContext } from "./view";

/** The token a step focuses: the newest one shown (the last prompt token at step 0). */
export function stepToken(prompt: number, step: number): number {
  return prompt + step - 1;
}

/** One query row of a layer: the selected head's weights, or the mean over `heads`. */
export function attentionRow(layer: LayerData, query: number, head: number, heads: number[]): Float32Array {
  const [hCount, q, k] = layer.shape;
  const use = head >= 0 ? [head] : heads.length ? heads : Array.from({ length: hCount }, (_, i) => i);
  const out = new Float32Array(k);
  for (const x of use) {
    const base = (x * q + query) * k;
    for (let j = 0; j < k; j++) out[j] += layer.data[base + j] / use.length;
  }
  return out;
}

export class GenerationView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "generation";
  private readonly slider: HTMLInputElement;
  private readonly label: HTMLElement;
  private readonly strip: HTMLElement;
  private destroyed = false;

  constructor(private readonly ctx: ViewContext, private readonly internals: Internals, private readonly gen: GenerationInfo) {
    this.element = h("div", "txm-panel txm-inside txm-generation");
    this.element.dataset.view = "generation";
    const bar = h("div", "txm-inside-bar");
    const back = h("button", "txm-gen-back", "◀");
    back.type = "button";
    back.setAttribute("aria-label", "previous step");
    const forward = h("button", "txm-gen-forward", "▶");
    forward.type = "button";
    forward.setAttribute("aria-label", "next step");
    this.slider = h("input", "txm-gen-step");
    this.slider.type = "range";
    Object.assign(this.slider, { min: "0", max: String(gen.steps), step: "1", value: String(internals.step) });
    this.slider.setAttribute("aria-label", "generation step");
    this.label = h("span", "txm-gen-label");
    bar.append(back, this.slider, forward, this.label);
    this.strip = h("div", "txm-gen-strip");
    const how = gen.sample ? "sampled" : "greedy";
    this.element.append(bar, this.strip, h("div", "txm-inside-note",
      `${gen.steps} tokens generated (${how}) after a ${gen.prompt}-token prompt; generated tokens are in italics. ` +
      "Each step focuses the newest token's attention to everything before it."));
    this.slider.addEventListener("input", () => this.setStep(Number(this.slider.value)));
    back.addEventListener("click", () => this.setStep(this.internals.step - 1));
    forward.addEventListener("click", () => this.setStep(this.internals.step + 1));
  }

  needsAllLayers(): boolean {
    return false;
  }

  /** Move to `step` (clamped): pin its newest token, so every view focuses it. */
  setStep(step: number): void {
    const gen = this.gen;
    const s = Math.max(0, Math.min(gen.steps, Math.trunc(step)));
    this.internals.step = s;
    this.slider.value = String(s);
    this.element.dataset.step = String(s);
    const before = this.ctx.store.get();
    this.ctx.store.set({ pinned: stepToken(gen.prompt, s), pinnedSide: "query", hover: -1 });
    if (this.ctx.store.get() === before) this.update(before, "all"); // nothing changed in the store: redraw here
  }

  update(s: Readonly<Selection>, _changes: Changes): void {
    const gen = this.gen;
    const step = this.internals.step;
    const focus = stepToken(gen.prompt, step);
    const tokens = this.ctx.source.meta.sequences.input?.text ?? [];
    this.element.dataset.step = String(step);
    this.label.textContent = step === 0
      ? `step 0 of ${gen.steps}: the prompt`
      : `step ${step} of ${gen.steps}: generated ${visibleToken(tokens[focus] ?? "")}`;
    const kind = this.ctx.source.meta.kinds.some((k) => k.name === s.kind) ? s.kind : this.ctx.source.meta.kinds[0].name;
    const layer = this.ctx.source.peekLayer(kind, s.layer);
    if (!layer) {
      this.ctx.source.getLayer(kind, s.layer).then(
        () => {
          if (!this.destroyed) this.update(this.ctx.store.get(), "all");
        },
        (err: unknown) => {
          if (!this.destroyed) this.ctx.report(err);
        },
      );
    }
    const row = layer && focus < layer.shape[1] ? attentionRow(layer, focus, s.head, s.heads) : null;
    const dark = this.ctx.theme.dark;
    clear(this.strip);
    for (let t = 0; t <= focus && t < tokens.length; t++) {
      const span = h("span", "txm-gen-token", tokens[t]);
      span.dataset.index = String(t);
      if (t >= gen.prompt) span.classList.add("txm-generated");
      if (t === focus) span.classList.add("txm-focus");
      if (row) {
        span.style.background = cssColor(weightColor(weightScale(row[t]), dark));
        span.title = `#${t} ${tokens[t]}: attention from ${tokens[focus] ?? ""} ${(row[t] * 100).toFixed(1)}%`;
        if (!dark && weightScale(row[t]) > 0.6) span.style.color = "#fff";
      }
      this.strip.append(span);
    }
    this.element.dataset.drawn = row ? "1" : "0";
  }

  destroy(): void {
    this.destroyed = true;
    this.element.remove();
  }
}

const stepFrames = new WeakMap<Frame, Map<number, Frame>>();

/**
 * `frame` cut to its first `shown` tokens (queries and keys), for the arc and matrix views at a
 * generation step; the frame itself when nothing is cut (all shown, a pair filter, or a pooled layer).
 */
export function stepFrame(frame: Frame, shown: number): Frame {
  const [, q, k] = frame.layer.shape;
  if (!(shown < q) || q !== k || !frame.crop.identity || (frame.pool ?? 1) > 1 || shown < 1) return frame;
  const byShown = getOrMake(stepFrames, frame, () => new Map<number, Frame>());
  return getOrMake(byShown, shown, () => cutFrame(frame, shown));
}

/** `frame` (whole, square) cut to its first `shown` queries and keys. */
function cutFrame(frame: Frame, shown: number): Frame {
  const [h, q, k] = frame.layer.shape;
  const rows = Int32Array.from({ length: shown }, (_, i) => i);
  const inverse = Int32Array.from({ length: q }, (_, i) => (i < shown ? i : -1));
  const data = new Float32Array(h * shown * shown);
  for (let x = 0; x < h; x++) {
    for (let i = 0; i < shown; i++) data.set(frame.layer.data.subarray((x * q + i) * k, (x * q + i) * k + shown), (x * shown + i) * shown);
  }
  const cut = (seq: SequenceInfo): SequenceInfo => ({
    text: seq.text.slice(0, shown), special: seq.special.slice(0, shown), segment: seq.segment.slice(0, shown), ids: seq.ids.slice(0, shown),
  });
  let mask: Uint8Array | null = null;
  if (frame.mask) {
    mask = new Uint8Array(shown * shown);
    for (let i = 0; i < shown; i++) mask.set(frame.mask.subarray(i * k, i * k + shown), i * shown);
  }
  return {
    ...frame,
    layer: { ...frame.layer, shape: [h, shown, shown], data },
    queries: cut(frame.queries), keys: cut(frame.keys),
    crop: { rows, cols: rows, rowOf: inverse, colOf: inverse, identity: false },
    mask,
  };
}
