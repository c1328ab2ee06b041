/** How head types and statistics read in the views: letters for badges, names, a legend. */

import { h } from "../dom";
import { formatWeight } from "../layout";
import { LABELS, type HeadStats, type HeadType } from "../stats";

export const TYPE_LETTER: Record<Exclude<HeadType, "">, string> = {
  induction: "I", previous: "P", first: "F", self: "S", local: "L", broad: "B",
};

export const TYPE_NAME: Record<Exclude<HeadType, "">, string> = {
  induction: "induction",
  previous: "previous token",
  first: "first token (sink)",
  self: "self",
  local: "local",
  broad: "broad (uniform)",
};

/** Letter badge of a head's type, or undefined when it has none. */
export function badgeOf(stats: HeadStats | undefined): string | undefined {
  return stats?.type ? TYPE_LETTER[stats.type] : undefined;
}

/** Tooltip lines for a head: its type and main statistics. */
export function statLines(stats: HeadStats | undefined): string[] {
  if (!stats) return [];
  const f = (x: number) => (Number.isFinite(x) ? formatWeight(x) : "–");
  const lines = [stats.type ? `type: ${TYPE_NAME[stats.type]}` : "type: none (no dominant pattern)"];
  lines.push(`entropy ${f(stats.entropy)} · max ${f(stats.max_weight)}`);
  if (Number.isFinite(stats.distance)) lines.push(`distance ${f(stats.distance)} · self ${f(stats.self)}`);
  lines.push(`first ${f(stats.first)}${Number.isFinite(stats.previous) ? ` · previous ${f(stats.previous)}` : ""}`);
  return lines;
}

/** A one-line legend of the type letters present in `stats` (empty element when none). */
export function typeLegend(stats: readonly HeadStats[] | null): HTMLElement {
  const legend = h("div", "txm-type-legend");
  const present = new Set(stats?.map((s) => s.type));
  for (const label of LABELS) {
    if (!present.has(label)) continue;
    const item = h("span", "txm-type-item");
    item.append(h("span", "txm-type-letter", TYPE_LETTER[label]), h("span", "", TYPE_NAME[label]));
    legend.append(item);
  }
  if (legend.childElementCount === 0 && stats) legend.append(h("span", "", "no head has a dominant pattern"));
  return legend;
}
