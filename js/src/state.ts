/**
 * The one selection every view reads and writes: which kind, layer and heads are shown, what
 * the matrix aggregates, which sentence-pair cells are shown, and which token is in focus.
 * A tiny observable store, no framework.
 */

import { ANALYSIS_VALUE, kindInfo, type KindInfo, type Meta } from "./wire";

/** Which column a focused token is in: a query (row of the matrix) or a key (column). */
export type Side = "query" | "key";

/** What the matrix shows when no single head is chosen. */
export type Aggregate = "mean" | "rollout";
export const AGGREGATES: readonly Aggregate[] = ["mean", "rollout"];

/** What the attention pictures weigh by: the raw weights, or value-weighted rows (Kobayashi et al. 2020). */
export type Weighting = "raw" | "value";
export const WEIGHTINGS: readonly Weighting[] = ["raw", "value"];

/** Sentence-pair filter: all cells, or queries from text A/B attending to keys from A/B. */
export type PairFilter = "all" | "AA" | "AB" | "BA" | "BB";
export const PAIR_FILTERS: readonly PairFilter[] = ["all", "AA", "AB", "BA", "BB"];

export interface Selection {
  kind: string;
  layer: number;
  /** Heads selected: the arc view draws each in its colour; the matrix averages them when head == -1. */
  heads: number[];
  /** Head the matrix shows alone, or -1 for the aggregate of `heads`. */
  head: number;
  /** With head == -1: the mean of `heads`, or their rollout through layers 0..layer. */
  aggregate: Aggregate;
  /** Which query/key segments of a sentence pair the matrix and arcs show. */
  pair: PairFilter;
  /** The matrix shows the mask (allowed vs masked) instead of weights. */
  showMask: boolean;
  /** Raw weights, or each row a_ij ||f(x_j)|| normalised to sum to 1: matrix, arcs, overview, statistics. */
  weighting: Weighting;
  /** Token under the pointer, or -1. */
  hover: number;
  hoverSide: Side;
  /** Token clicked (pinned), or -1. */
  pinned: number;
  pinnedSide: Side;
}

export type SelectionListener = (
  state: Readonly<Selection>,
  changed: ReadonlySet<keyof Selection>,
) => void;

/** The token in focus: hovered, else pinned; -1 for none. */
export interface Focus {
  index: number;
  side: Side;
}

export function focusOf(s: Readonly<Selection>): Focus {
  if (s.hover >= 0) return { index: s.hover, side: s.hoverSide };
  if (s.pinned >= 0) return { index: s.pinned, side: s.pinnedSide };
  return { index: -1, side: "query" };
}

/** The focused token index (hover, else pinned), whatever its side. */
export function focusToken(s: Readonly<Selection>): number {
  return s.hover >= 0 ? s.hover : s.pinned;
}

export const DEFAULT_SELECTION: Readonly<Selection> = {
  kind: "self",
  layer: 0,
  heads: [],
  head: -1,
  aggregate: "mean",
  pair: "all",
  showMask: false,
  weighting: "raw",
  hover: -1,
  hoverSide: "query",
  pinned: -1,
  pinnedSide: "query",
};

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  return a === b;
}

/** Observable selection. `set` notifies only when a value really changed. */
export class SelectionStore {
  private state: Selection;
  private readonly listeners = new Set<SelectionListener>();
  private onError: (err: unknown) => void;

  constructor(initial: Partial<Selection> = {}, onError?: (err: unknown) => void) {
    this.state = { ...DEFAULT_SELECTION, ...initial, heads: [...(initial.heads ?? DEFAULT_SELECTION.heads)] };
    this.onError = onError ?? ((err) => console.error(err));
  }

  get(): Readonly<Selection> {
    return this.state;
  }

  /** Focused token index (hover, else pinned), -1 for none. */
  get token(): number {
    return focusToken(this.state);
  }

  get focus(): Focus {
    return focusOf(this.state);
  }

  set(partial: Partial<Selection>): void {
    const changed = new Set<keyof Selection>();
    const next: Selection = { ...this.state };
    for (const key of Object.keys(partial) as (keyof Selection)[]) {
      const value = partial[key];
      if (value === undefined || sameValue(this.state[key], value)) continue;
      (next as unknown as Record<string, unknown>)[key] = Array.isArray(value) ? [...value] : value;
      changed.add(key);
    }
    if (changed.size === 0) return;
    this.state = next;
    for (const fn of [...this.listeners]) {
      try {
        fn(this.state, changed);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  /** Call `fn` after every change; returns the unsubscribe function. */
  subscribe(fn: SelectionListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Where errors thrown by listeners go (the explorer shows them in the widget). */
  setErrorHandler(fn: (err: unknown) => void): void {
    this.onError = fn;
  }
}

/** Whether queries and keys of a kind are the same tokens (self, encoder, decoder attention). */
export function isSelfKind(info: KindInfo): boolean {
  return info.queries === info.keys;
}

/** Whether value weighting can be had for a kind: the kernel (or the report) offers it, and every weight is kept. */
export function canWeighByValue(meta: Meta, info: KindInfo): boolean {
  return !info.streamed && (meta.analyses?.[info.name] ?? []).includes(ANALYSIS_VALUE);
}

/** Whether a kind's queries or keys hold two texts (a sentence pair), so the pair filter applies. */
export function hasPair(meta: Meta, info: KindInfo): boolean {
  return [info.queries, info.keys].some((name) => meta.sequences[name].segment.some((x) => x === 1));
}

/**
 * The nearest valid selection for this trace: known kind, layer in range, heads that exist
 * (sorted, unique), head -1 or a real head, rollout only for self-attention, a pair filter only
 * for sentence pairs, focus tokens inside their sequences.
 */
export function sanitize(meta: Meta, s: Readonly<Selection>): Selection {
  const kind = meta.kinds.some((k) => k.name === s.kind) ? s.kind : meta.kinds[0].name;
  const info = kindInfo(meta, kind);
  const clampInt = (v: number, lo: number, hi: number) =>
    Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.trunc(v))) : lo;
  const layer = clampInt(s.layer, 0, Math.max(0, info.layers - 1));
  const heads = [...new Set(s.heads.filter((h) => Number.isInteger(h) && h >= 0 && h < info.heads))].sort((a, b) => a - b);
  const head = Number.isInteger(s.head) && s.head >= 0 && s.head < info.heads ? s.head : -1;
  const lengths = {
    query: meta.sequences[info.queries].text.length,
    key: meta.sequences[info.keys].text.length,
  };
  const tokenIn = (i: number, side: Side) => (Number.isInteger(i) && i >= 0 && i < lengths[side] ? i : -1);
  const aggregate: Aggregate = s.aggregate === "rollout" && isSelfKind(info) ? "rollout" : "mean";
  const pair: PairFilter = PAIR_FILTERS.includes(s.pair) && hasPair(meta, info) ? s.pair : "all";
  const weighting: Weighting = s.weighting === "value" && canWeighByValue(meta, info) ? "value" : "raw";
  return {
    kind, layer, heads, head, aggregate, pair, showMask: s.showMask === true, weighting,
    hover: tokenIn(s.hover, s.hoverSide), hoverSide: s.hoverSide === "key" ? "key" : "query",
    pinned: tokenIn(s.pinned, s.pinnedSide), pinnedSide: s.pinnedSide === "key" ? "key" : "query",
  };
}

/** The fields of `s` that `sanitize` would change (empty when `s` is valid). */
export function corrections(meta: Meta, s: Readonly<Selection>): Partial<Selection> {
  const fixed = sanitize(meta, s);
  const out: Partial<Selection> = {};
  for (const key of Object.keys(fixed) as (keyof Selection)[]) {
    if (!sameValue(fixed[key], s[key])) (out as Record<string, unknown>)[key] = fixed[key];
  }
  return out;
}

/**
 * The query token Python's `token` trait reports: the focused token when it is a query, or a
 * key of a kind whose queries and keys are the same tokens (self, encoder, decoder); else -1.
 */
export function focusedQuery(meta: Meta, s: Readonly<Selection>): number {
  const f = focusOf(s);
  if (f.index < 0) return -1;
  if (f.side === "query") return f.index;
  const info = meta.kinds.find((k) => k.name === s.kind);
  return info && info.queries === info.keys ? f.index : -1;
}
