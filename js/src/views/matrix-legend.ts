/** The matrix view's legend: the weight ramp on its √ scale with ticks, or allowed vs masked. */

import { cssColor, LEGEND_TICKS, maskColors, weightColor, weightScale } from "../colors";
import { clear, h } from "../dom";
import { ALLOWED_SCALE } from "./matrix-draw";

export class MatrixLegend {
  readonly element = h("div", "txm-legend");
  private shownFor = "";

  /** Show the legend for the theme and mode (the mask or weights); rebuilt only when they change. */
  show(dark: boolean, showMask: boolean): void {
    const key = `${dark}|${showMask}`;
    if (key === this.shownFor) return;
    this.shownFor = key;
    clear(this.element);
    const [m1, m2] = maskColors(dark);
    const swatch = h("span", "txm-legend-mask");
    swatch.style.background = `repeating-linear-gradient(45deg, ${cssColor(m1)} 0 2px, ${cssColor(m2)} 2px 5px)`;
    if (showMask) {
      const allowed = h("span", "txm-legend-mask txm-legend-allowed");
      allowed.style.background = cssColor(weightColor(ALLOWED_SCALE, dark));
      this.element.append(allowed, h("span", "", "allowed"), swatch, h("span", "", "masked"));
      return;
    }
    const stops: string[] = [];
    for (let i = 0; i <= 10; i++) stops.push(`${cssColor(weightColor(i / 10, dark))} ${i * 10}%`);
    const scale = h("span", "txm-legend-scale");
    const bar = h("span", "txm-legend-bar");
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    scale.append(bar);
    for (const t of LEGEND_TICKS) {
      const tick = h("span", "txm-legend-tick", String(t));
      tick.style.left = `${weightScale(t) * 100}%`;
      scale.append(tick);
    }
    this.element.append(h("span", "", "weight (√ scale)"), scale, swatch, h("span", "", "masked"));
  }
}
