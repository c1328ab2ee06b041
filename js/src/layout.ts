/** Pure geometry: token rows, labels, matrix cells, hit testing, ticks. No DOM. */

/** Token text made visible: whitespace shown as symbols, empty text as a placeholder. */
export function displayToken(text: string): string {
  if (text.length === 0) return "∅";
  const shown = text.replace(/\r\n|\n|\r/g, "⏎").replace(/\t/g, "⇥");
  return shown.trim().length === 0 ? shown.replace(/ /g, "␣") : shown;
}

/** Cut `text` to at most `maxChars` characters (code points), ending in an ellipsis when cut. */
export function truncateLabel(text: string, maxChars: number): string {
  const chars = Array.from(text);
  if (chars.length <= maxChars) return text;
  if (maxChars <= 1) return "…";
  return `${chars.slice(0, maxChars - 1).join("")}…`;
}

/** Vertical centre of row `i` in a column of rows `rowHeight` tall starting at `top`. */
export function rowCenter(i: number, rowHeight: number, top = 0): number {
  return top + (i + 0.5) * rowHeight;
}

/** Token row under `y` (relative to the column's top), or -1 outside the `n` rows. */
export function tokenAt(y: number, rowHeight: number, n: number): number {
  if (!(rowHeight > 0) || y < 0) return -1;
  const i = Math.floor(y / rowHeight);
  return i < n ? i : -1;
}

/** First and last rows (inclusive) at least partly visible in a viewport; [0, -1] when none. */
export function visibleRows(scrollTop: number, viewHeight: number, rowHeight: number, n: number): [number, number] {
  if (n <= 0 || !(rowHeight > 0) || viewHeight <= 0) return [0, -1];
  const first = Math.max(0, Math.floor(scrollTop / rowHeight));
  const last = Math.min(n - 1, Math.ceil((scrollTop + viewHeight) / rowHeight) - 1);
  return first <= last ? [first, last] : [0, -1];
}

/**
 * Vertical offset of head `slot` (of `count` drawn) at a token row, so lines of different heads
 * between the same tokens fan out instead of overlapping.
 */
export function headOffset(slot: number, count: number, rowHeight: number): number {
  if (count <= 1) return 0;
  const spread = rowHeight * 0.6;
  return (slot / (count - 1) - 0.5) * spread;
}

export interface MatrixGeometry {
  queries: number;
  keys: number;
  /** Side of one cell in CSS pixels (may be fractional for long sequences). */
  cell: number;
  width: number;
  height: number;
}

/**
 * Cell size for a `queries` x `keys` matrix fitting `available` CSS pixels on its longer side,
 * between `minCell` and `maxCell`.
 */
export function matrixGeometry(queries: number, keys: number, available: number, maxCell = 28, minCell = 0.5): MatrixGeometry {
  const longest = Math.max(1, queries, keys);
  const cell = Math.max(minCell, Math.min(maxCell, Math.max(1, available) / longest));
  return { queries, keys, cell, width: keys * cell, height: queries * cell };
}

/** The (query, key) cell under a point in the matrix's CSS pixels, or null outside. */
export function cellAt(x: number, y: number, g: MatrixGeometry): { query: number; key: number } | null {
  if (x < 0 || y < 0 || !(g.cell > 0)) return null;
  const key = Math.floor(x / g.cell);
  const query = Math.floor(y / g.cell);
  if (key >= g.keys || query >= g.queries) return null;
  return { query, key };
}

/** Pixel span [start, end) of cell index `i` along one axis at device scale `scale`. */
export function cellSpan(i: number, cell: number, scale = 1): [number, number] {
  return [Math.round(i * cell * scale), Math.round((i + 1) * cell * scale)];
}

/**
 * Which of `n` token labels to show on an axis whose cells are `cell` px apart, so labels stay at
 * least `minSpacing` px apart: all of them when they fit, else every k-th with k in 1, 2, 5, 10,
 * 20, 50, ... Always includes `focus` when it is a valid index (the focused token stays labelled).
 */
export function labelTicks(n: number, cell: number, minSpacing = 12, focus = -1): number[] {
  if (n <= 0) return [];
  let step = 1;
  if (cell < minSpacing) {
    const need = minSpacing / Math.max(cell, 1e-6);
    const nice = [1, 2, 5];
    for (let mag = 1; ; mag *= 10) {
      const found = nice.find((m) => m * mag >= need);
      if (found !== undefined) {
        step = found * mag;
        break;
      }
    }
  }
  const ticks: number[] = [];
  for (let i = 0; i < n; i += step) ticks.push(i);
  if (focus >= 0 && focus < n && !ticks.includes(focus)) {
    // Drop neighbours that would overlap the focused label.
    const kept = ticks.filter((i) => Math.abs(i - focus) * cell >= minSpacing);
    kept.push(focus);
    return kept.sort((a, b) => a - b);
  }
  return ticks;
}

/** Line width and alpha for an arc of attention weight `w` (0..1). */
export function arcStyle(w: number): { width: number; alpha: number } {
  const v = Math.min(1, Math.max(0, w));
  return { width: 0.75 + 3.25 * Math.sqrt(v), alpha: Math.min(1, 0.08 + 0.92 * v ** 0.75) };
}

/** Number formatting for exact weights: at least 4 significant digits. */
export function formatWeight(w: number): string {
  if (w === 0) return "0";
  if (!Number.isFinite(w)) return String(w);
  const abs = Math.abs(w);
  if (abs >= 1e-4) return w.toPrecision(4);
  return w.toExponential(3);
}
