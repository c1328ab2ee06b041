/**
 * What a matrix picture shows for a selection: one head, the mean of the selected heads, or
 * their rollout through the layer, cropped to the pair filter. Shared by the matrix view, the
 * layer-evolution view and the exporter, so all three always agree.
 */

import type { MatrixCache } from "./aggregate";
import { getOrMake } from "./cache";
import type { Derived } from "./derived";
import { cropMatrix, type Crop, type Frame } from "./frame";
import type { Selection } from "./state";
import { kindInfo, type Meta } from "./wire";

export interface ShownContext {
  matrices: MatrixCache;
  derived: Derived;
}

const cropped = new WeakMap<Float32Array, WeakMap<Crop, Float32Array>>();

/** `m` (uncropped, keys `k` wide) cut to the frame's crop; the same array for the same inputs. */
function cropOnce(m: Float32Array, k: number, crop: Crop): Float32Array {
  if (crop.identity) return m;
  const byCrop = getOrMake(cropped, m, () => new WeakMap<Crop, Float32Array>());
  return getOrMake(byCrop, crop, () => cropMatrix(m, k, crop));
}

/** Whether the selection shows a rollout (which needs every layer of the kind). */
export function showsRollout(s: Readonly<Selection>): boolean {
  return s.head < 0 && s.aggregate === "rollout";
}

/**
 * The frame's matrix for selection `s` (rows x cols of the frame), or null while a rollout
 * waits for layers that are not here yet.
 */
export function matrixFor(ctx: ShownContext, s: Readonly<Selection>, frame: Frame): Float32Array | null {
  if (!showsRollout(s)) return ctx.matrices.get(frame.layer, s.heads, s.head);
  const all = ctx.derived.rollout(frame.info.name, s.heads);
  const full = all?.[frame.layer.layer];
  return full ? cropOnce(full, frame.crop.colOf.length, frame.crop) : null;
}

/**
 * A short description of what the matrix shows: "layer 3 · head 2", "layer 3 · rollout of 12 heads",
 * with " · value-weighted" when the selection weighs by value.
 */
export function describeShown(meta: Meta, s: Readonly<Selection>): string {
  return describeHeads(meta, s) + (s.weighting === "value" ? " · value-weighted" : "");
}

function describeHeads(meta: Meta, s: Readonly<Selection>): string {
  if (s.head >= 0) return `layer ${s.layer} · head ${s.head}`;
  const n = s.heads.length;
  if (n === 0) return `layer ${s.layer} · no heads selected`;
  const all = n === kindInfo(meta, s.kind).heads;
  const which = all ? `all ${n} heads` : n <= 6 ? `heads ${s.heads.join(", ")}` : `${n} heads`;
  return s.aggregate === "rollout" ? `rollout through layer ${s.layer} · ${which}` : `layer ${s.layer} · mean of ${which}`;
}
