/** What every view gets from the explorer, and what it offers back. */

import type { MatrixCache } from "../aggregate";
import type { AttentionSource, LayerData } from "../source";
import type { Selection, SelectionStore } from "../state";

export interface Theme {
  dark: boolean;
}

export interface ViewContext {
  source: AttentionSource;
  store: SelectionStore;
  theme: Theme;
  /** Shared cache of matrices (single head or mean of heads) per layer. */
  matrices: MatrixCache;
  /** Show an error inside the widget. */
  report(err: unknown): void;
}

/**
 * What changed since the last update: a set of selection fields; "all" (new data or theme:
 * redraw and re-measure everything); "resize" (the pane changed size: re-measure).
 */
export type Changes = ReadonlySet<keyof Selection> | "all" | "resize";

export interface View {
  readonly element: HTMLElement;
  /** True once the view has drawn real data at least once. */
  readonly drawn: boolean;
  /** Draw `state` with `layer` (the layer `state` names, already loaded). */
  update(state: Readonly<Selection>, layer: LayerData, changes: Changes): void;
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
