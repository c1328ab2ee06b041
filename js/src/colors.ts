/**
 * Colours: one per head (distinct for any head count), and the sequential map for weights.
 * Computed in OKLab/OKLCH so equal steps look equal.
 */

export type RGB = [r: number, g: number, b: number];

function srgbEncode(c: number): number {
  const v = c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055;
  return v * 255;
}

function srgbDecode(c255: number): number {
  const c = c255 / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** OKLab (L 0..1) to linear sRGB (may fall outside 0..1). */
function oklabToLinear(L: number, a: number, b: number): [number, number, number] {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  return [
    4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
    -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
    -0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s,
  ];
}

/** sRGB (0..255) to OKLab. */
export function rgbToOklab([r, g, b]: RGB): [number, number, number] {
  const lr = srgbDecode(r), lg = srgbDecode(g), lb = srgbDecode(b);
  const l = Math.cbrt(0.4122214708 * lr + 0.5363325363 * lg + 0.0514459929 * lb);
  const m = Math.cbrt(0.2119034982 * lr + 0.6806995451 * lg + 0.1073969566 * lb);
  const s = Math.cbrt(0.0883024619 * lr + 0.2817188376 * lg + 0.6299787005 * lb);
  return [
    0.2104542553 * l + 0.793617785 * m - 0.0040720468 * s,
    1.9779984951 * l - 2.428592205 * m + 0.4505937099 * s,
    0.0259040371 * l + 0.7827717662 * m - 0.808675766 * s,
  ];
}

/** OKLCH to sRGB 0..255, lowering chroma until the colour fits the gamut. */
export function oklchToRgb(L: number, C: number, hueDeg: number): RGB {
  const h = (hueDeg * Math.PI) / 180;
  for (let c = C; ; c *= 0.92) {
    const lin = oklabToLinear(L, c * Math.cos(h), c * Math.sin(h));
    if (c < 1e-3 || lin.every((v) => v >= -1e-4 && v <= 1 + 1e-4)) {
      return lin.map((v) => Math.round(Math.min(255, Math.max(0, srgbEncode(Math.min(1, Math.max(0, v))))))) as RGB;
    }
  }
}

/** Perceptual distance between two colours (Euclidean in OKLab; ~0.02 is just noticeable). */
export function colorDistance(a: RGB, b: RGB): number {
  const p = rgbToOklab(a), q = rgbToOklab(b);
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

export function cssColor([r, g, b]: RGB, alpha = 1): string {
  return alpha >= 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** Candidate head colours: an OKLab grid inside the sRGB gamut, saturated, in a lightness band. */
function candidates(dark: boolean): [number, number, number][] {
  const [lo, hi] = dark ? [0.62, 0.9] : [0.45, 0.72];
  const out: [number, number, number][] = [];
  for (let li = 0; li < 7; li++) {
    const L = lo + ((hi - lo) * li) / 6;
    for (let C = 0.06; C <= 0.17 + 1e-9; C += 0.01) {
      for (let hue = 0; hue < 360; hue += 4) {
        const a = C * Math.cos((hue * Math.PI) / 180), b = C * Math.sin((hue * Math.PI) / 180);
        if (oklabToLinear(L, a, b).every((v) => v >= -1e-4 && v <= 1 + 1e-4)) out.push([L, a, b]);
      }
    }
  }
  return out;
}

const sequences = new Map<boolean, RGB[]>();

/**
 * The head colour sequence: greedy farthest-point picks in OKLab, starting from a blue, so every
 * prefix is as spread out as it can be (the first n colours serve n heads; with 64 heads any two
 * still differ by ~0.07 in OKLab, well above the ~0.02 just-noticeable difference).
 */
function headSequence(count: number, dark: boolean): RGB[] {
  const have = sequences.get(dark);
  if (have && have.length >= count) return have;
  const pts = candidates(dark);
  const n = pts.length;
  const target = Math.max(64, count);
  const dist = new Float64Array(n).fill(Infinity);
  const seed: [number, number, number] = [dark ? 0.76 : 0.58, -0.03, -0.13];
  let pick = 0;
  let best = Infinity;
  pts.forEach((p, i) => {
    const d = (p[0] - seed[0]) ** 2 + (p[1] - seed[1]) ** 2 + (p[2] - seed[2]) ** 2;
    if (d < best) {
      best = d;
      pick = i;
    }
  });
  const out: RGB[] = [];
  for (let k = 0; k < target; k++) {
    const [L, a, b] = pts[pick];
    const lin = oklabToLinear(L, a, b);
    out.push(lin.map((v) => Math.round(srgbEncode(Math.min(1, Math.max(0, v))))) as RGB);
    let next = 0, far = -1;
    for (let i = 0; i < n; i++) {
      const p = pts[i];
      const d = (p[0] - L) ** 2 + (p[1] - a) ** 2 + (p[2] - b) ** 2;
      if (d < dist[i]) dist[i] = d;
      if (dist[i] > far) {
        far = dist[i];
        next = i;
      }
    }
    pick = next;
  }
  sequences.set(dark, out);
  return out;
}

/**
 * One colour per head for `count` heads, all clearly distinct for any count (12, 30, 64, ...):
 * darker on light backgrounds, lighter on dark ones, so lines stay visible either way.
 */
export function headColors(count: number, dark = false): RGB[] {
  return headSequence(count, dark).slice(0, Math.max(0, count)).map((c) => [...c] as RGB);
}

const colorCache = new Map<string, RGB[]>();

/** Cached `headColors`. */
export function headColor(head: number, count: number, dark = false): RGB {
  const key = `${count}/${dark}`;
  let list = colorCache.get(key);
  if (!list) {
    list = headColors(count, dark);
    colorCache.set(key, list);
  }
  return list[head] ?? [128, 128, 128];
}

/** Stops of the weight map (OKLab interpolation between them): light and dark theme. */
const LIGHT_STOPS: RGB[] = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
const DARK_STOPS: RGB[] = [[30, 30, 34], [28, 62, 102], [36, 110, 170], [92, 170, 222], [222, 240, 255]];

/**
 * The sequential colour map for weights 0..1 as a 256-entry RGBA lookup table
 * (index = round(weight * 255)). Light: white to dark blue; dark: background to bright blue-white.
 */
export function weightRamp(dark = false): Uint8ClampedArray {
  const stops = (dark ? DARK_STOPS : LIGHT_STOPS).map(rgbToOklab);
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const s = Math.min(stops.length - 2, Math.floor(t));
    const f = t - s;
    const L = stops[s][0] + (stops[s + 1][0] - stops[s][0]) * f;
    const a = stops[s][1] + (stops[s + 1][1] - stops[s][1]) * f;
    const b = stops[s][2] + (stops[s + 1][2] - stops[s][2]) * f;
    const lin = oklabToLinear(L, a, b);
    for (let c = 0; c < 3; c++) lut[i * 4 + c] = Math.round(srgbEncode(Math.min(1, Math.max(0, lin[c]))));
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

const rampCache = new Map<boolean, Uint8ClampedArray>();

export function cachedWeightRamp(dark = false): Uint8ClampedArray {
  let lut = rampCache.get(dark);
  if (!lut) {
    lut = weightRamp(dark);
    rampCache.set(dark, lut);
  }
  return lut;
}

/**
 * Where a weight sits on the colour scale, 0..1: the square root, so the many small weights of
 * long sequences stay visible (0.25 lands mid-ramp). Tooltips always show the exact value.
 */
export function weightScale(weight: number): number {
  return weight > 0 ? (weight >= 1 ? 1 : Math.sqrt(weight)) : 0;
}

/** The weights the legend labels, with their positions on the scale. */
export const LEGEND_TICKS: readonly number[] = [0, 0.05, 0.25, 1];

/** The ramp's colour at scale position `weight` (clamped to 0..1; see weightScale). */
export function weightColor(weight: number, dark = false): RGB {
  const lut = cachedWeightRamp(dark);
  const i = Math.round(Math.min(1, Math.max(0, weight)) * 255) * 4;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

/** Masked cells: two greys for a hatch, distinct from the ramp's zero colour. */
export function maskColors(dark = false): [RGB, RGB] {
  return dark ? [[58, 58, 62], [78, 78, 84]] : [[214, 214, 214], [236, 236, 236]];
}
