/**
 * The Training tab (tx_magic.Recorder(...).show()): a slider over the snapshots; at the chosen step,
 * the selected layer's heads (max-pooled thumbnails, exact cells for inputs of up to 32 tokens) and the
 * selected head (or the mean of the heads) large; under them the fluctuation of every layer at every
 * step (each layer's mean total-variation change since the snapshot before, tx_magic/analysis/recorder.py),
 * so a layer that keeps moving stands out. The data is the `_training` trait; the step is synced to
 * Python's `step`.
 */

import { clear, h } from "../dom";
import type { Selection } from "../state";
import { toBytes, toFloat32, type WireTrainingPanel } from "../wire";
import { cellGrid, markCell, paintMatrix, weightCss } from "./cells";
import { weightColor, weightScale } from "../colors";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

export interface TrainingKindData {
  name: string;
  layers: number;
  heads: number;
  size: number;
  thumbnails: Uint8Array;
  /** (snapshots, layers). */
  fluctuation: Float32Array;
}

export function decodeTraining(raw: WireTrainingPanel): { steps: number[]; kinds: TrainingKindData[] } {
  const S = raw.steps.length;
  return {
    steps: [...raw.steps],
    kinds: raw.kinds.map((k) => {
      const out = { ...k, thumbnails: toBytes(k.thumbnails), fluctuation: toFloat32(k.fluctuation) };
      if (out.thumbnails.length !== S * k.layers * k.heads * k.size ** 2 || out.fluctuation.length !== S * k.layers) {
        throw new Error(`tx_magic: training data of ${k.name} does not match ${S} snapshots of ${k.layers} x ${k.heads} heads`);
      }
      return out;
    }),
  };
}

/** One head's T x T thumbnail at snapshot s as weights 0..1 (the mean of `heads` when head < 0). */
export function snapshotMatrix(k: TrainingKindData, s: number, layer: number, head: number, heads: readonly number[]): Float32Array {
  const T = k.size, n = T * T;
  const chosen = head >= 0 ? [head] : heads.length ? heads : Array.from({ length: k.heads }, (_, i) => i);
  const out = new Float32Array(n);
  for (const x of chosen) {
    const base = ((s * k.layers + layer) * k.heads + x) * n;
    for (let i = 0; i < n; i++) out[i] += k.thumbnails[base + i] / 255 / chosen.length;
  }
  return out;
}

export class TrainingView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Training";
  private readonly slider: HTMLInputElement;
  private readonly label: HTMLElement;
  private readonly heads: HTMLElement;
  private readonly fluctHost: HTMLElement;
  private step: number;
  private readonly data: ReturnType<typeof decodeTraining>;

  constructor(private readonly ctx: ViewContext, raw: WireTrainingPanel, initial: number, private readonly onStep: (step: number) => void) {
    this.data = decodeTraining(raw);
    const S = this.data.steps.length;
    this.step = Math.max(0, Math.min(S - 1, initial));
    this.element = h("div", "txm-panel txm-training");
    this.element.dataset.view = "training";
    const bar = h("div", "txm-inside-bar");
    this.slider = h("input", "txm-train-step");
    this.slider.type = "range";
    Object.assign(this.slider, { min: "0", max: String(S - 1), step: "1", value: String(this.step) });
    this.slider.setAttribute("aria-label", "training snapshot");
    this.label = h("span", "txm-train-label");
    bar.append(h("span", "", "snapshot"), this.slider, this.label);
    this.heads = h("div", "txm-train-heads");
    this.fluctHost = h("div", "txm-train-fluct");
    this.element.append(bar, this.heads, this.fluctHost);
    this.slider.addEventListener("input", () => this.setStep(Number(this.slider.value)));
  }

  needsAllLayers(): boolean {
    return false;
  }

  /** Show snapshot `s` (and tell Python). */
  setStep(s: number): void {
    this.step = Math.max(0, Math.min(this.data.steps.length - 1, Math.trunc(s)));
    this.slider.value = String(this.step);
    this.onStep(this.step);
    this.update(this.ctx.store.get(), "all");
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const k = this.data.kinds.find((x) => x.name === s.kind) ?? this.data.kinds[0];
    const layer = Math.min(s.layer, k.layers - 1);
    const step = this.data.steps[this.step];
    this.element.dataset.step = String(this.step);
    this.label.textContent = `step ${step} (${this.step + 1} of ${this.data.steps.length})`;
    clear(this.heads);
    const dark = this.ctx.theme.dark;
    const colour = (v: number) => weightColor(weightScale(v), dark);
    const big = h("figure", "txm-train-big");
    const canvas = h("canvas");
    paintMatrix(canvas, snapshotMatrix(k, this.step, layer, s.head, s.heads), k.size, k.size, Math.max(4, Math.floor(160 / k.size)), colour);
    big.append(canvas, h("figcaption", "", `${k.name} layer ${layer}, ${s.head >= 0 ? `head ${s.head}` : "mean of the heads"} at step ${step}`));
    this.heads.append(big);
    for (let x = 0; x < k.heads; x++) {
      const fig = h("figure", "txm-train-head");
      const c = h("canvas");
      paintMatrix(c, snapshotMatrix(k, this.step, layer, x, []), k.size, k.size, Math.max(1, Math.floor(48 / k.size)), colour);
      fig.append(c, h("figcaption", "", `h${x}`));
      fig.addEventListener("click", () => this.ctx.store.set({ layer, head: x }));
      this.heads.append(fig);
    }
    clear(this.fluctHost);
    const S = this.data.steps.length;
    let largest = 1e-12;
    for (const v of k.fluctuation) if (Number.isFinite(v)) largest = Math.max(largest, v);
    const grid = cellGrid({
      rowLabels: Array.from({ length: k.layers }, (_, l) => `L${l}`),
      colLabels: this.data.steps.map((st, i) => (S <= 16 || i % Math.ceil(S / 16) === 0 ? String(st) : "")),
      size: S > 40 ? 10 : 16,
      cell: (l, i) => {
        const v = k.fluctuation[i * k.layers + l];
        return { background: weightCss(v / largest, dark), title: `layer ${l}, step ${this.data.steps[i]}: fluctuation ${Number.isFinite(v) ? v.toFixed(4) : "– (first snapshot)"}` };
      },
      onClick: (l, i) => {
        this.ctx.store.set({ layer: l });
        this.setStep(i);
      },
    });
    markCell(grid, layer, this.step);
    this.fluctHost.append(h("div", "txm-view-title", "fluctuation per layer (share of attention that moved since the snapshot before)"),
      grid, h("div", "txm-hint", `darkest: ${largest.toFixed(3)}; a layer still changing late in training stands out`));
  }

  destroy(): void {
    this.element.remove();
  }
}
