/**
 * Keyboard control of the explorer (the root is focusable): what each key does to the
 * selection. Pure: the explorer applies the result and shows KEYS in its "?" help.
 */

import { focusOf, isSelfKind, type Selection } from "./state";
import { kindInfo, type Meta } from "./wire";

/** The keys, as the help popover and the README list them. */
export const KEYS: readonly [keys: string, what: string][] = [
  ["← → or ↑ ↓", "move the focused token"],
  ["PageUp PageDown or [ ]", "previous / next layer"],
  ["0-9", "show that head alone in the matrix"],
  ["h l", "previous / next head (the aggregate sits before head 0)"],
  ["m", "mean of the selected heads"],
  ["+ −", "zoom the matrix in (around the focused token) / out; double-click zooms in too"],
  ["r", "rollout of the selected heads (self-attention)"],
  ["Esc", "unpin the focused token"],
  ["?", "show or hide this help"],
  ["Alt-click (or Ctrl/Cmd-click)", "a head chip, an overview or Effects cell: ablate that head, again to restore (the model reruns); a matrix cell (one head shown): edit that weight"],
];

export type KeyResult = { set: Partial<Selection> } | { help: true } | null;

/** Shown token positions per side (the pair filter's crop), in display order. */
export interface Order {
  query: ArrayLike<number>;
  key: ArrayLike<number>;
}

function moveToken(s: Readonly<Selection>, order: Order, step: number): Partial<Selection> | null {
  const focus = focusOf(s);
  const side = focus.index >= 0 ? focus.side : "query";
  const shown = Array.from(order[side]);
  if (shown.length === 0) return null;
  const at = shown.indexOf(focus.index);
  const next = at < 0 ? (step > 0 ? 0 : shown.length - 1) : Math.min(shown.length - 1, Math.max(0, at + step));
  return { pinned: shown[next], pinnedSide: side, hover: -1 };
}

/** What `key` does to selection `s`; null for keys the explorer leaves alone. */
export function keyAction(key: string, s: Readonly<Selection>, meta: Meta, order: Order): KeyResult {
  const info = kindInfo(meta, s.kind);
  const set = (patch: Partial<Selection> | null): KeyResult => (patch ? { set: patch } : null);
  switch (key) {
    case "ArrowRight":
    case "ArrowDown":
      return set(moveToken(s, order, 1));
    case "ArrowLeft":
    case "ArrowUp":
      return set(moveToken(s, order, -1));
    case "PageDown":
    case "]":
      return set({ layer: Math.min(info.layers - 1, s.layer + 1) });
    case "PageUp":
    case "[":
      return set({ layer: Math.max(0, s.layer - 1) });
    case "h":
      return set({ head: Math.max(-1, s.head - 1) });
    case "l":
      return set({ head: Math.min(info.heads - 1, s.head + 1) });
    case "m":
      return set({ head: -1, aggregate: "mean" });
    case "r":
      return isSelfKind(info) ? set({ head: -1, aggregate: "rollout" }) : null;
    case "Escape":
      return set({ pinned: -1, hover: -1 });
    case "?":
      return { help: true };
    default:
      if (/^[0-9]$/.test(key) && Number(key) < info.heads) return set({ head: Number(key) });
      return null;
  }
}
