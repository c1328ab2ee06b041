/** What every view gets from the explorer, and what it offers back. */

import type { MatrixCache } from "../aggregate";
import type { Derived } from "../derived";
import type { Frame, FrameCache } from "../frame";
import type { Interventions } from "../interventions";
import type { AttentionSource } from "../source";
import type { Selection, SelectionStore } from "../state";
import type { ValueWeights } from "../values";

export interface Theme {
  dark: boolean;
}

export interface ViewContext {
  source: AttentionSource;
  store: SelectionStore;
  theme: Theme;
  /** Shared cache of matrices (single head or mean of heads) per layer. */
  matrices: MatrixCache;
  /** Layers cropped to the pair filter, and each kind's mask. */
  frames: FrameCache;
  /** Every layer of a kind, statistics, rollouts. */
  derived: Derived;
  /** Show an error inside the widget. */
  report(err: unknown): void;
  /** Fetch every layer of `kind` (with the explorer's loading status), then redraw. */
  loadAll(kind: string): void;
  /** What was done to the run shown, and (live widgets) the reruns that ablate, edit and restore. */
  interventions?: Interventions;
  /** Each kind's value norms, for value weighting (`source` already weighs the blocks it gives). */
  values?: ValueWeights;
}

/**
 * What changed since the last update: a set of selection fields; "all" (new data or theme:
 * redraw and re-measure everything); "resize" (the pane changed size: re-measure).
 */
export type Changes = ReadonlySet<keyof Selection> | "all" | "resize";

/** A main view (arcs, matrix): draws the selected layer, already loaded and cropped. */
export interface View {
  readonly element: HTMLElement;
  /** True once the view has drawn real data at least once. */
  readonly drawn: boolean;
  /** Draw `state` with `frame` (the layer `state` names, cropped to its pair filter). */
  update(state: Readonly<Selection>, frame: Frame, changes: Changes): void;
  destroy(): void;
}

/** A secondary view in a tab (grid, heads, layers, statistics): fetches what it needs itself. */
export interface PanelView {
  readonly element: HTMLElement;
  /** Tab label. */
  readonly title: string;
  /** Whether it draws every layer of the kind (the explorer then loads them all). */
  needsAllLayers(state: Readonly<Selection>): boolean;
  /** Draw `state`; called only while its tab is open ("all" when the tab opens). */
  update(state: Readonly<Selection>, changes: Changes): void;
  destroy(): void;
}

/** Whether `changes` may affect something that depends on `keys` (always for "all" / "resize"). */
export function touches(changes: Changes, ...keys: (keyof Selection)[]): boolean {
  return typeof changes === "string" || keys.some((k) => changes.has(k));
}

/** Whether only the focus (hover / pin) changed: views then skip measuring and rebuilding. */
export function focusOnly(changes: Changes): boolean {
  if (typeof changes === "string") return false;
  for (const k of changes) if (k !== "hover" && k !== "hoverSide" && k !== "pinned" && k !== "pinnedSide") return false;
  return true;
}
