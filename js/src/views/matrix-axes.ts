/**
 * The matrix view's axis labels: query tokens down the left, key tokens along the top, thinned
 * to stay apart, and the focused token's label on each axis (hiding the ticks it would overlap).
 */

import { clear, h } from "../dom";
import { displayToken, labelTicks, truncateLabel, type MatrixGeometry } from "../layout";
import type { CellWindow } from "../source";
import type { SequenceInfo } from "../wire";

const LABEL_CHARS = 14;
const CHAR_PX = 7;
/** Closest two labels of an axis may be, centre to centre, in CSS pixels. */
const LABEL_SPACING = 13;

/** Room for an axis's labels: long enough for its longest (truncated) token. */
export function labelExtent(seq: SequenceInfo): number {
  let longest = 1;
  for (const t of seq.text) longest = Math.max(longest, Math.min(LABEL_CHARS, Array.from(displayToken(t)).length));
  return Math.max(36, Math.min(LABEL_CHARS * CHAR_PX + 12, longest * CHAR_PX + 12));
}

type AxisName = "row" | "col";

/** The label of token `index` of `seq`, at tick `tick` of the row (left) or column (top) axis. */
function axisLabel(seq: SequenceInfo, index: number, tick: number, axis: AxisName, cell: number): HTMLElement {
  const label = h("div", `txm-axis-label txm-axis-${axis}`, truncateLabel(displayToken(seq.text[index]), LABEL_CHARS));
  label.dir = "auto";
  label.style[axis === "row" ? "top" : "left"] = `${(tick + 0.5) * cell}px`;
  if (seq.special[index]) label.classList.add("txm-special");
  label.dataset.axisIndex = String(tick);
  return label;
}

/** One axis: its tick labels and its focus label. */
class AxisLabels {
  readonly element: HTMLElement;
  private readonly focusLabel: HTMLElement;
  private readonly along: "top" | "left";
  private ticks: HTMLElement[] = [];

  constructor(private readonly axis: AxisName) {
    this.element = h("div", axis === "row" ? "txm-matrix-ylabels" : "txm-matrix-xlabels");
    this.focusLabel = h("div", `txm-axis-label txm-axis-focus txm-axis-${axis}`);
    this.focusLabel.dir = "auto";
    this.along = axis === "row" ? "top" : "left";
  }

  /** Tick labels for tokens `start`..`start + n - 1` of `seq`; `extent`: room across the axis, `length`: along it. */
  build(seq: SequenceInfo, start: number, n: number, cell: number, extent: number, length: number): void {
    clear(this.element);
    this.ticks = [];
    const style = this.element.style;
    style[this.axis === "row" ? "width" : "height"] = `${extent}px`;
    style[this.axis === "row" ? "height" : "width"] = `${length}px`;
    for (const t of labelTicks(n, cell, LABEL_SPACING)) {
      const label = axisLabel(seq, start + t, t, this.axis, cell);
      this.ticks.push(label);
      this.element.append(label);
    }
    this.element.append(this.focusLabel);
  }

  /** Label shown token `index` of the window starting at `start` (-1: none). */
  focus(index: number, seq: SequenceInfo, start: number, cell: number): void {
    for (const tick of this.ticks) {
      const near = index >= 0 && Math.abs(Number(tick.dataset.axisIndex) - index) * cell < LABEL_SPACING;
      if (tick.hidden !== near) tick.hidden = near;
    }
    const label = this.focusLabel;
    if (index < 0) {
      label.hidden = true;
      return;
    }
    label.hidden = false;
    label.textContent = truncateLabel(displayToken(seq.text[start + index] ?? ""), LABEL_CHARS);
    label.style[this.along] = `${(index + 0.5) * cell}px`;
  }
}

export class MatrixAxes {
  private readonly rows = new AxisLabels("row");
  private readonly cols = new AxisLabels("col");
  private builtFor = "";

  /** The key labels (top). */
  get xLabels(): HTMLElement {
    return this.cols.element;
  }

  /** The query labels (left). */
  get yLabels(): HTMLElement {
    return this.rows.element;
  }

  /**
   * Tick labels for window `w` at geometry `g` (`rowW` / `colH`: room for the row / column
   * labels); rebuilt only when these or `tokens` (what identifies the sequences) change.
   */
  build(tokens: string, queries: SequenceInfo, keys: SequenceInfo, g: MatrixGeometry, rowW: number, colH: number, w: CellWindow): void {
    const key = `${tokens}|${g.cell}|${rowW}|${colH}|${w.q0}|${w.q1}|${w.k0}|${w.k1}`;
    if (key === this.builtFor) return;
    this.builtFor = key;
    this.rows.build(queries, w.q0, w.q1 - w.q0, g.cell, rowW, g.height);
    this.cols.build(keys, w.k0, w.k1 - w.k0, g.cell, colH, g.width);
  }

  /** Label the focused row and column (shown indices within window `w`, -1: none). */
  focus(row: number, col: number, queries: SequenceInfo, keys: SequenceInfo, g: MatrixGeometry, w: CellWindow): void {
    this.rows.focus(row, queries, w.q0, g.cell);
    this.cols.focus(col, keys, w.k0, g.cell);
  }
}
