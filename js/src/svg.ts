/**
 * The current arc and matrix views as a standalone SVG, built from the data (not from the
 * screen): token labels as escaped <text>, arcs as <path>, heat-map cells as <rect> (up to
 * RECT_LIMIT tokens a side; longer inputs embed the heat map as a PNG <image>), a legend.
 */

import { cssColor, headColor, LEGEND_TICKS, maskColors, weightColor, weightScale, type RGB } from "./colors";
import type { Frame } from "./frame";
import { arcStyle, displayToken, headOffset, labelTicks, truncateLabel } from "./layout";
import { describeShown } from "./shown";
import { focusOf, type Selection } from "./state";
import type { Meta } from "./wire";

/** Longest side drawn as one <rect> per cell. */
export const RECT_LIMIT = 256;

/** Turns a heat map into a PNG data URL (the exporter's canvas; absent in tests). */
export type Rasterize = (colors: Uint32Array, cols: number, rows: number) => string;

export interface SvgInput {
  meta: Meta;
  state: Readonly<Selection>;
  frame: Frame;
  /** What the matrix shows (frame rows x cols). */
  matrix: Float32Array;
  dark: boolean;
}

export interface SvgPicture {
  svg: string;
  width: number;
  height: number;
}

const FONT = "'DejaVu Sans', 'Noto Sans', 'Noto Sans CJK SC', 'Noto Color Emoji', system-ui, sans-serif";
const MONO = "'DejaVu Sans Mono', 'Noto Sans Mono', 'Noto Sans CJK SC', 'Noto Color Emoji', monospace";
const LABEL_CHARS = 16;
const FOCUS: RGB = [242, 142, 43];
const MARGIN = 12;
/** Width of the legend row (label, colour bar, mask swatch). */
const LEGEND_WIDTH = 330;

/** Text safe inside XML: markup characters escaped, characters XML forbids replaced. */
export function escapeXml(text: string): string {
  return text
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the control characters XML 1.0 forbids, matched to replace them
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd")
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const num = (x: number) => String(Math.round(x * 100) / 100);

function hex([r, g, b]: RGB): string {
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}

function label(text: string): string {
  return escapeXml(truncateLabel(displayToken(text), LABEL_CHARS));
}

function textWidth(texts: readonly string[], charPx: number, lo: number, hi: number): number {
  let longest = 1;
  for (const t of texts) longest = Math.max(longest, Math.min(LABEL_CHARS, Array.from(displayToken(t)).length));
  return Math.max(lo, Math.min(hi, longest * charPx + 10));
}

/** Build the SVG of the arc view and the matrix view side by side. */
export function buildSvg(input: SvgInput, rasterize?: Rasterize): SvgPicture {
  const { meta, state, frame, matrix, dark } = input;
  const fg = dark ? "#e6e6e6" : "#1f2328";
  const muted = dark ? "#9da5b0" : "#636c76";
  const bg = dark ? "#1e1e22" : "#ffffff";
  const [H, Q, K] = frame.layer.shape;
  const out: string[] = [];
  const focus = focusOf(state);
  const fq = focus.index >= 0 ? (focus.side === "query" ? frame.crop.rowOf[focus.index] ?? -1 : -1) : -1;
  const fk = focus.index >= 0 ? (focus.side === "key" ? frame.crop.colOf[focus.index] ?? -1 : -1) : -1;
  const same = frame.info.queries === frame.info.keys;
  // With the same tokens on both axes, a focused token marks its row and its column.
  const markRow = fq >= 0 ? fq : same && fk >= 0 ? frame.crop.rowOf[focus.index] : -1;
  const markCol = fk >= 0 ? fk : same && fq >= 0 ? frame.crop.colOf[focus.index] : -1;

  // ---- arc panel ----
  const top = 44;
  const rows = Math.max(Q, K, 1);
  const rowH = Math.max(3, Math.min(18, 1100 / rows));
  const fontPx = Math.max(6, Math.min(11, rowH - 4));
  const qw = textWidth(frame.queries.text, 6.6, 40, 130), kw = textWidth(frame.keys.text, 6.6, 40, 130);
  const arcW = 200;
  const x1 = qw + 4, x2 = qw + arcW - 4;
  const yOf = (i: number) => top + 18 + (i + 0.5) * rowH;
  out.push(`<text x="${num(qw)}" y="${top + 8}" font-size="10" fill="${muted}" text-anchor="end">queries</text>`);
  out.push(`<text x="${num(qw + arcW)}" y="${top + 8}" font-size="10" fill="${muted}">keys</text>`);
  const arcs: string[] = [];
  const heads = state.heads.filter((x) => x < H);
  const mask = frame.mask;
  if (fq >= 0 || fk >= 0) {
    heads.forEach((head, slot) => {
      const color = hex(headColor(head, H, dark));
      const off = headOffset(slot, heads.length, rowH);
      const others = fq >= 0 ? K : Q;
      for (let o = 0; o < others; o++) {
        const cell = fq >= 0 ? fq * K + o : o * K + fk;
        if (mask && !mask[cell]) continue;
        const w = frame.layer.data[head * Q * K + cell];
        if (!(w >= 0.01)) continue;
        const ya = yOf(fq >= 0 ? fq : o) + off, yb = yOf(fq >= 0 ? o : fk) + off;
        const st = arcStyle(Math.min(1, w));
        arcs.push(`<path d="M${num(x1)} ${num(ya)}C${num(qw + arcW * 0.42)} ${num(ya)} ${num(qw + arcW * 0.58)} ${num(yb)} ${num(x2)} ${num(yb)}" stroke="${color}" stroke-width="${num(st.width)}" stroke-opacity="${num(st.alpha)}"/>`);
      }
    });
  } else if (heads.length > 0) {
    const mean = new Float64Array(Q * K);
    for (const head of heads) for (let c = 0; c < Q * K; c++) mean[c] += frame.layer.data[head * Q * K + c] / heads.length;
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        if ((mask && !mask[i * K + j]) || !(mean[i * K + j] >= 0.08)) continue;
        const ya = yOf(i), yb = yOf(j);
        arcs.push(`<path d="M${num(x1)} ${num(ya)}C${num(qw + arcW * 0.42)} ${num(ya)} ${num(qw + arcW * 0.58)} ${num(yb)} ${num(x2)} ${num(yb)}" stroke="${muted}" stroke-width="1" stroke-opacity="${num(0.1 + 0.5 * Math.sqrt(mean[i * K + j]))}"/>`);
      }
    }
  }
  out.push(`<g fill="none" stroke-linecap="round">${arcs.join("")}</g>`);
  const tokenColumn = (texts: string[], x: number, anchor: "start" | "end", focused: number, width: number) => {
    const show = rowH >= 9 ? null : new Set(labelTicks(texts.length, rowH, 10, focused));
    const parts: string[] = [];
    texts.forEach((t, i) => {
      if (i === focused) {
        parts.push(`<rect x="${num(anchor === "end" ? x - width + 4 : x - 2)}" y="${num(yOf(i) - rowH / 2)}" width="${num(width - 2)}" height="${num(rowH)}" rx="3" fill="${cssColor(FOCUS)}"/>`);
      }
      if (show && !show.has(i)) return;
      const ink = i === focused ? "#1a1a1a" : fg;
      parts.push(`<text x="${num(x)}" y="${num(yOf(i))}" text-anchor="${anchor}" fill="${ink}">${label(t)}</text>`);
    });
    return `<g font-family="${MONO}" font-size="${num(fontPx)}" dominant-baseline="central">${parts.join("")}</g>`;
  };
  out.push(tokenColumn(frame.queries.text, qw - 4, "end", fq >= 0 ? fq : -1, qw));
  out.push(tokenColumn(frame.keys.text, qw + arcW + 4, "start", fk >= 0 ? fk : -1, kw));
  const arcBottom = yOf(rows - 1) + rowH / 2;

  // ---- matrix panel ----
  const mx0 = qw + arcW + kw + 36;
  const rlw = textWidth(frame.queries.text, 6.2, 30, 110), clh = textWidth(frame.keys.text, 6.2, 30, 110);
  const cell = Math.max(0.5, Math.min(24, 520 / Math.max(Q, K, 1)));
  const mx = mx0 + rlw, my = top + clh;
  const mw = K * cell, mh = Q * cell;
  const showMask = state.showMask;
  const [m1, m2] = maskColors(dark);
  const zero = weightColor(0, dark);
  const allowedColor: RGB = dark ? [92, 170, 222] : [33, 113, 181];
  const colorOf = (c: number): RGB | null => {
    if (mask && !mask[c]) return null;
    return showMask ? allowedColor : weightColor(weightScale(matrix[c]), dark);
  };
  out.push(`<defs><pattern id="txm-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${hex(m2)}"/><rect width="2" height="6" fill="${hex(m1)}"/></pattern>`);
  const stops = Array.from({ length: 11 }, (_, i) => `<stop offset="${i * 10}%" stop-color="${hex(weightColor(i / 10, dark))}"/>`);
  out.push(`<linearGradient id="txm-ramp">${stops.join("")}</linearGradient></defs>`);
  out.push(`<rect x="${num(mx)}" y="${num(my)}" width="${num(mw)}" height="${num(mh)}" fill="${showMask ? "url(#txm-hatch)" : hex(zero)}"/>`);
  if (Math.max(Q, K) <= RECT_LIMIT || !rasterize) {
    const cells: string[] = [];
    const skip = showMask ? null : hex(zero);
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        const color = colorOf(i * K + j);
        const fill = color ? hex(color) : "url(#txm-hatch)";
        if (fill === skip || (showMask && !color)) continue;
        cells.push(`<rect x="${num(mx + j * cell)}" y="${num(my + i * cell)}" width="${num(cell)}" height="${num(cell)}" fill="${fill}"/>`);
      }
    }
    out.push(`<g shape-rendering="crispEdges">${cells.join("")}</g>`);
  } else {
    const px = new Uint32Array(Q * K);
    const pack = ([r, g, b]: RGB) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        const color = colorOf(i * K + j);
        px[i * K + j] = pack(color ?? ((i + j) % 3 === 0 ? m1 : m2));
      }
    }
    out.push(`<image x="${num(mx)}" y="${num(my)}" width="${num(mw)}" height="${num(mh)}" preserveAspectRatio="none" style="image-rendering:pixelated" href="${rasterize(px, K, Q)}"/>`);
  }
  const accent = cssColor(FOCUS);
  if (markRow >= 0) out.push(`<rect x="${num(mx)}" y="${num(my + markRow * cell)}" width="${num(mw)}" height="${num(Math.max(cell, 2))}" fill="none" stroke="${accent}" stroke-width="2"/>`);
  if (markCol >= 0) out.push(`<rect x="${num(mx + markCol * cell)}" y="${num(my)}" width="${num(Math.max(cell, 2))}" height="${num(mh)}" fill="none" stroke="${accent}" stroke-width="2" stroke-dasharray="3 2"/>`);
  out.push(`<rect x="${num(mx)}" y="${num(my)}" width="${num(mw)}" height="${num(mh)}" fill="none" stroke="${muted}" stroke-width="0.5"/>`);
  const axisLabels: string[] = [];
  for (const i of labelTicks(Q, cell, 12, markRow)) {
    axisLabels.push(`<text x="${num(mx - 5)}" y="${num(my + (i + 0.5) * cell)}" text-anchor="end" dominant-baseline="central"${i === markRow ? ` fill="${accent}" font-weight="700"` : ""}>${label(frame.queries.text[i])}</text>`);
  }
  for (const j of labelTicks(K, cell, 12, markCol)) {
    const x = mx + (j + 0.5) * cell, y = my - 5;
    axisLabels.push(`<text transform="translate(${num(x)} ${num(y)}) rotate(-90)" dominant-baseline="central"${j === markCol ? ` fill="${accent}" font-weight="700"` : ""}>${label(frame.keys.text[j])}</text>`);
  }
  out.push(`<g font-family="${MONO}" font-size="10" fill="${fg}">${axisLabels.join("")}</g>`);

  // ---- legend ----
  const ly = my + mh + 22;
  if (showMask) {
    out.push(`<rect x="${num(mx)}" y="${num(ly)}" width="14" height="9" fill="${hex(allowedColor)}"/><text x="${num(mx + 19)}" y="${num(ly + 8)}" font-size="10" fill="${muted}">allowed</text>`);
    out.push(`<rect x="${num(mx + 80)}" y="${num(ly)}" width="14" height="9" fill="url(#txm-hatch)"/><text x="${num(mx + 99)}" y="${num(ly + 8)}" font-size="10" fill="${muted}">masked</text>`);
  } else {
    out.push(`<text x="${num(mx)}" y="${num(ly + 8)}" font-size="10" fill="${muted}">weight (√ scale)</text>`);
    const gx = mx + 92;
    out.push(`<rect x="${num(gx)}" y="${num(ly)}" width="140" height="9" fill="url(#txm-ramp)" stroke="${muted}" stroke-width="0.5"/>`);
    for (const t of LEGEND_TICKS) {
      const x = gx + weightScale(t) * 140;
      out.push(`<text x="${num(x)}" y="${num(ly + 21)}" font-size="9" fill="${muted}" text-anchor="middle">${t}</text>`);
    }
    out.push(`<rect x="${num(gx + 156)}" y="${num(ly)}" width="14" height="9" fill="url(#txm-hatch)"/><text x="${num(gx + 175)}" y="${num(ly + 8)}" font-size="10" fill="${muted}">masked</text>`);
  }

  const width = Math.ceil(Math.max(mx + mw, mx + LEGEND_WIDTH) + 2 * MARGIN);
  const height = Math.ceil(Math.max(arcBottom, ly + 28) + 2 * MARGIN);
  const kindName = meta.kinds.length > 1 ? ` · ${frame.info.name}` : "";
  const pair = state.pair === "all" ? "" : ` · ${state.pair[0]}→${state.pair[1]}`;
  const what = showMask ? `${frame.info.mask} mask` : describeShown(meta, state);
  const title = `<text x="0" y="16" font-size="14" font-weight="600" fill="${fg}">${escapeXml(meta.model)}</text>` +
    `<text x="0" y="34" font-size="12" fill="${muted}">${escapeXml(`${what}${kindName}${pair}`)}</text>`;
  return {
    width, height,
    svg: `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">` +
      `<rect width="${width}" height="${height}" fill="${bg}"/><g transform="translate(${MARGIN} ${MARGIN})">${title}${out.join("")}</g></svg>`,
  };
}
