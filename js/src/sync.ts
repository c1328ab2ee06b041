/**
 * Binds the selection store to the anywidget model's traits `kind`, `layer`, `heads`, `head`,
 * `aggregate`, `token` and `weighting`. Python is authoritative when it changes a trait; the user's changes are saved
 * back. Values are compared before writing either way, so nothing echoes.
 */

import { focusedQuery, type Selection, type SelectionStore } from "./state";
import type { Meta } from "./wire";

/** A handler the model calls with whatever its event carries (the handler checks what it gets). */
export type ModelListener = (...args: never[]) => void;

/** The part of anywidget's model this renderer uses. */
export interface WidgetModel {
  get(name: string): unknown;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, callback: ModelListener): void;
  off(event?: string | null, callback?: ModelListener | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

const SYNCED = ["kind", "layer", "heads", "head", "aggregate", "token", "weighting"] as const;

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}

/** The selection the model's traits describe (used to seed the store). */
export function selectionFromModel(model: WidgetModel, meta: Meta): Partial<Selection> {
  const out: Partial<Selection> = {};
  const kind = model.get("kind");
  const info = meta.kinds.find((k) => k.name === kind) ?? meta.kinds[0];
  out.kind = info.name;
  const layer = model.get("layer");
  if (typeof layer === "number") out.layer = layer;
  const heads = model.get("heads");
  out.heads = Array.isArray(heads) ? heads.filter((h): h is number => typeof h === "number") : Array.from({ length: info.heads }, (_, h) => h);
  const head = model.get("head");
  if (typeof head === "number") out.head = head;
  const aggregate = model.get("aggregate");
  if (aggregate === "mean" || aggregate === "rollout") out.aggregate = aggregate;
  const weighting = model.get("weighting");
  if (weighting === "raw" || weighting === "value") out.weighting = weighting;
  const token = model.get("token");
  if (typeof token === "number" && token >= 0) {
    out.pinned = token;
    out.pinnedSide = "query";
  }
  return out;
}

/** Keep store and model in step; returns the function that unbinds both directions. */
export function bindModel(model: WidgetModel, store: SelectionStore, meta: Meta): () => void {
  let pulling = false;

  const pull = () => {
    const s = store.get();
    const patch: Partial<Selection> = {};
    const kind = model.get("kind");
    if (typeof kind === "string") patch.kind = kind;
    const layer = model.get("layer");
    if (typeof layer === "number") patch.layer = layer;
    const heads = model.get("heads");
    if (Array.isArray(heads)) patch.heads = heads.filter((h): h is number => typeof h === "number");
    const head = model.get("head");
    if (typeof head === "number") patch.head = head;
    const aggregate = model.get("aggregate");
    if (aggregate === "mean" || aggregate === "rollout") patch.aggregate = aggregate;
    const weighting = model.get("weighting");
    if (weighting === "raw" || weighting === "value") patch.weighting = weighting;
    const token = model.get("token");
    // A token set by Python is a pin (on the query side); ignore the echo of our own value.
    if (typeof token === "number" && token !== focusedQuery(meta, s)) {
      patch.pinned = token;
      patch.pinnedSide = "query";
    }
    pulling = true;
    try {
      store.set(patch);
    } finally {
      pulling = false;
    }
    // Python's value may have been corrected (e.g. an out-of-range layer): push the fix back.
    push();
  };

  const push = () => {
    if (pulling) return;
    const s = store.get();
    const values: Record<(typeof SYNCED)[number], unknown> = {
      kind: s.kind, layer: s.layer, heads: s.heads, head: s.head, aggregate: s.aggregate, token: focusedQuery(meta, s),
      weighting: s.weighting,
    };
    let dirty = false;
    for (const name of SYNCED) {
      if (!sameValue(model.get(name), values[name])) {
        model.set(name, Array.isArray(values[name]) ? [...(values[name] as number[])] : values[name]);
        dirty = true;
      }
    }
    if (dirty) model.save_changes();
  };

  const handlers = SYNCED.map((name) => [`change:${name}`, pull] as const);
  for (const [event, fn] of handlers) model.on(event, fn);
  const unsubscribe = store.subscribe(() => push());
  push(); // the renderer may have corrected the initial selection
  return () => {
    for (const [event, fn] of handlers) model.off(event, fn);
    unsubscribe();
  };
}
