/**
 * Stroking the arc view's canvas: curves from the query column (left edge) to the key column
 * (right edge). A focused token's arcs are one colour per head, width and opacity by weight
 * (batched into buckets, one stroke each); the overview is faint grey links in four levels.
 */

import { cssColor, headColor } from "../colors";
import { arcStyle, headOffset, rowCenter, visibleRows } from "../layout";
import type { Side } from "../state";
import type { TopKBlock } from "../wire";
import type { Visitor } from "./arc-weights";

/** The canvas and the part of the token columns it shows. */
export interface ArcViewport {
  ctx: CanvasRenderingContext2D;
  /** Scroll offset of the columns, CSS pixels. */
  top: number;
  width: number;
  height: number;
  rowHeight: number;
  dark: boolean;
}

interface Segment {
  y1: number;
  y2: number;
}

const BUCKETS = 8;
/** Weakest weight the overview draws. */
const OVERVIEW_MIN = 0.08;

/** Stroke one path of arcs from the query column (left edge) to the key column (right edge). */
function strokeArcs(ctx: CanvasRenderingContext2D, segs: readonly Segment[], width: number): void {
  const x1 = 1, x2 = width - 1, c1 = width * 0.42, c2 = width * 0.58;
  ctx.beginPath();
  for (const s of segs) {
    ctx.moveTo(x1, s.y1);
    ctx.bezierCurveTo(c1, s.y1, c2, s.y2, x2, s.y2);
  }
  ctx.stroke();
}

/**
 * The focused token's arcs in each of `selected` heads (those under `headCount`): the fixed end
 * at shown row `index` of column `side`, the other ends and weights from `visit`; weights under
 * `threshold` are skipped.
 */
export function drawFocusArcs(
  vp: ArcViewport, index: number, side: Side, visit: Visitor,
  selected: readonly number[], headCount: number, threshold: number,
): void {
  const { ctx, top, width, height: viewH, rowHeight: rowH, dark } = vp;
  const heads = selected.filter((x) => x < headCount);
  const buckets: Segment[][][] = heads.map(() => Array.from({ length: BUCKETS }, () => []));
  const fixedY = rowCenter(index, rowH) - top;
  heads.forEach((head, slot) => {
    const off = headOffset(slot, heads.length, rowH);
    visit(head, (o, w) => {
      if (!(w >= threshold)) return;
      const y = rowCenter(o, rowH) - top + off;
      const yf = fixedY + off;
      if ((y < -rowH && yf < -rowH) || (y > viewH + rowH && yf > viewH + rowH)) return;
      const b = Math.min(BUCKETS - 1, Math.floor(Math.sqrt(Math.min(1, w)) * BUCKETS));
      buckets[slot][b].push(side === "query" ? { y1: yf, y2: y } : { y1: y, y2: yf });
    });
  });
  const x1 = 1, x2 = width - 1;  // the columns strokeArcs joins, for the end marker
  ctx.lineCap = "round";
  for (let b = 0; b < BUCKETS; b++) {
    const rep = ((b + 0.5) / BUCKETS) ** 2;
    const style = arcStyle(rep);
    heads.forEach((head, slot) => {
      const segs = buckets[slot][b];
      if (segs.length === 0) return;
      ctx.strokeStyle = cssColor(headColor(head, headCount, dark));
      ctx.globalAlpha = style.alpha;
      ctx.lineWidth = style.width;
      strokeArcs(ctx, segs, width);
    });
  }
  // End markers at the focused token.
  ctx.globalAlpha = 1;
  ctx.fillStyle = dark ? "#e8e8e8" : "#333";
  ctx.beginPath();
  ctx.arc(side === "query" ? x1 + 2 : x2 - 2, fixedY, 2.5, 0, Math.PI * 2);
  ctx.fill();
}

/** Which of the overview's four levels (faintest first) an arc of weight `w` belongs to. */
function levelOf(w: number): number {
  return Math.min(3, Math.floor(Math.sqrt(w) * 4));
}

/**
 * Stroke an overview of `queries` query rows: `links(first, last, add)` calls `add(query, key,
 * weight)` for the links of the visible queries first..last worth drawing. One stroke per level,
 * each level a little more opaque than the one before.
 */
function strokeOverview(vp: ArcViewport, queries: number, links: (first: number, last: number, add: (q: number, k: number, w: number) => void) => void): void {
  const { ctx, top, rowHeight: rowH } = vp;
  const [first, last] = visibleRows(top, vp.height, rowH, queries);
  const levels: Segment[][] = [[], [], [], []];
  links(first, last, (q, k, w) => levels[levelOf(w)].push({ y1: rowCenter(q, rowH) - top, y2: rowCenter(k, rowH) - top }));
  ctx.strokeStyle = vp.dark ? "rgb(190, 196, 210)" : "rgb(80, 92, 112)";
  ctx.lineWidth = 1;
  levels.forEach((segs, l) => {
    if (segs.length === 0) return;
    ctx.globalAlpha = 0.08 + 0.08 * l;
    strokeArcs(ctx, segs, vp.width);
  });
  ctx.globalAlpha = 1;
}

/** The overview of mean weights `mean` (Q x K) of the selected heads, masked cells left out. */
export function drawMeanOverview(vp: ArcViewport, mean: Float32Array, Q: number, K: number, mask: Uint8Array | null): void {
  strokeOverview(vp, Q, (first, last, add) => {
    for (let i = first; i <= last; i++) {
      for (let j = 0; j < K; j++) {
        const cell = i * K + j;
        if (mask && !mask[cell]) continue;
        const w = mean[cell];
        if (!(w >= OVERVIEW_MIN)) continue;
        add(i, j, w);
      }
    }
  });
}

/** The overview of a pooled layer: every visible query's top-k weights in heads `heads`, Q queries. */
export function drawTopKOverview(vp: ArcViewport, topk: TopKBlock, heads: readonly number[], Q: number): void {
  const [H, , k] = topk.shape;
  strokeOverview(vp, Q, (first, last, add) => {
    for (const head of heads) {
      if (head >= H) continue;
      for (let i = first; i <= last; i++) {
        const base = (head * Q + i) * k;
        for (let r = 0; r < k; r++) {
          const w = topk.data[base + r];
          if (!(w >= OVERVIEW_MIN)) break; // largest first
          add(i, topk.index[base + r], w);
        }
      }
    }
  });
}
