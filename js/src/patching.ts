/**
 * The `_patching` trait decoded: effects of activation patching (Python's `tx_magic.patch`) per layer
 * (rows) and head, position or attention block (columns), by one or more methods over the same sites.
 */

import { toFloat32, unchecked, type WireBytes, type WirePatchingInfo, type WirePatchingResult } from "./wire";

export interface PatchingResult {
  method: string;
  /** (rows, cols) row-major. */
  effects: Float32Array;
  raw: Float32Array;
  seconds: number;
}

export interface Patching {
  by: "head" | "layer" | "position";
  kind: string;
  metric: string;
  metricClean: number;
  metricCorrupt: number;
  rows: number;
  cols: number;
  columns: string[];
  corrupted: string[];
  results: PatchingResult[];
  /** Spearman rank correlation of the first two results, when there are two. */
  correlation: number | null;
}

/** Decode `_patching`; null when there is none ({}). */
export function decodePatching(raw: unknown): Patching | null {
  if (raw === undefined || raw === null || (typeof raw === "object" && Object.keys(raw).length === 0)) return null;
  const p = unchecked<WirePatchingInfo>(raw, "_patching");
  const rows = Number(p.rows), cols = Number(p.cols);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || !Array.isArray(p.results)) {
    throw new Error("tx_magic: malformed patching results (rows, cols and results expected)");
  }
  const by = p.by === "layer" || p.by === "position" ? p.by : "head";
  const results = (p.results as unknown[]).map((r, i) => {
    const x = unchecked<WirePatchingResult>(r, `patching result ${i}`);
    const effects = toFloat32(x.effects as WireBytes), values = toFloat32(x.raw as WireBytes);
    if (effects.length !== rows * cols || values.length !== rows * cols) {
      throw new Error(`tx_magic: patching result ${i} holds ${effects.length} effects for ${rows} x ${cols} sites`);
    }
    return { method: String(x.method), effects, raw: values, seconds: Number(x.seconds) };
  });
  return {
    by, kind: String(p.kind), metric: String(p.metric), metricClean: Number(p.metric_clean),
    metricCorrupt: Number(p.metric_corrupt), rows, cols, columns: (p.columns as unknown[] ?? []).map(String),
    corrupted: (p.corrupted as unknown[] ?? []).map(String), results,
    correlation: typeof p.correlation === "number" ? p.correlation : null,
  };
}

/** A diverging colour for an effect in [-1, 1] (and beyond, clamped): blue below 0, white at 0, red above. */
export function divergingColor(t: number, dark: boolean): string {
  const v = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  const base = dark ? [38, 40, 46] : [255, 255, 255];
  const end = v >= 0 ? [202, 0, 32] : [5, 113, 176];
  const a = Math.sqrt(Math.abs(v));
  const mix = base.map((b, i) => Math.round(b + (end[i] - b) * a));
  return `rgb(${mix[0]}, ${mix[1]}, ${mix[2]})`;
}

/** The largest |effect| over every result (the colour scale's end), at least a small floor. */
export function effectScale(p: Patching): number {
  let top = 0;
  for (const r of p.results) for (const v of r.effects) if (Number.isFinite(v)) top = Math.max(top, Math.abs(v));
  return Math.max(top, 1e-6);
}
