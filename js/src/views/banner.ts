/**
 * The intervention banner above the views: what was done to the run shown ("ablated: L5H1, L5H5",
 * edits), and, when the kernel can rerun, zero / mean ablation and one click to restore the model's
 * own run; "rerunning the model…" while the kernel works. Hidden when the run is the model's own.
 */

import { h, listenGuarded } from "../dom";
import type { Interventions } from "../interventions";
import { ABLATIONS, type Ablation } from "../wire";

export class InterventionBanner {
  readonly element: HTMLElement;
  private readonly status: HTMLElement;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly interventions: Interventions, report: (err: unknown) => void) {
    this.element = h("div", "txm-intervention");
    this.element.setAttribute("role", "status");
    const info = interventions.info;
    this.status = h("span", "txm-intervention-status");
    this.element.hidden = info === null;
    const on = (target: EventTarget, type: string, fn: (e: Event) => void) =>
      this.cleanups.push(listenGuarded(target, type, fn, report));
    if (info) {
      this.element.append(h("span", "txm-intervention-icon", "✂"), h("span", "txm-intervention-label", info.label));
      if (interventions.live && info.ablate.length > 0) {
        const mode = h("select", "txm-ablation-mode");
        mode.setAttribute("aria-label", "ablation: zero or mean");
        mode.title = "replace the ablated heads' output by zeros, or by its mean over the text's positions";
        for (const a of ABLATIONS) {
          const o = h("option", "", a);
          o.value = a;
          mode.append(o);
        }
        mode.value = interventions.ablation;
        on(mode, "change", () => interventions.setAblation(mode.value as Ablation));
        this.element.append(mode);
      }
      if (interventions.live) {
        const restore = h("button", "txm-link txm-restore", "restore");
        restore.type = "button";
        restore.title = "rerun the model as it is (no ablation, no edit)";
        on(restore, "click", () => interventions.restore());
        this.element.append(restore);
      } else {
        this.element.append(h("span", "txm-hint", "(no kernel here to rerun the model)"));
      }
    }
    this.element.append(this.status);
    this.cleanups.push(interventions.onBusy((busy) => this.busy(busy)));
  }

  private busy(busy: boolean): void {
    this.status.textContent = busy ? "rerunning the model…" : "";
    if (busy) this.element.hidden = false;
    else this.element.hidden = this.interventions.info === null;
    this.element.classList.toggle("txm-busy", busy);
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.element.remove();
  }
}
