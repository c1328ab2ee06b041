/**
 * One statistic per head as colour: the values of a built-in statistic (js/src/stats.ts, from the
 * layers) or of one a user registered in Python (sent in the kind's `user_stats`), and the panels that
 * paint them over a layers x heads grid (the Statistics tab and the overview grid's colourings).
 */

import { STAT_NAMES, type HeadStats, type StatName } from "../stats";
import type { KindInfo } from "../wire";
import type { MultiplesLayout, Panel } from "./multiples";
import type { ViewContext } from "./view";

/** Every statistic a kind offers: the built-in ones, then the user's (in registration order). */
export function statNames(info: KindInfo): string[] {
  return [...STAT_NAMES, ...Object.keys(info.user_stats ?? {})];
}

/** Whether `name` is one of the user's statistics of this kind. */
export function isUserStat(info: KindInfo, name: string): boolean {
  return Boolean(info.user_stats && name in info.user_stats);
}

/** One head's value of statistic `name` (NaN when unknown). */
export function statOf(info: KindInfo, stats: readonly HeadStats[] | null, name: string, key: number): number {
  const user = info.user_stats?.[name];
  if (user) return user[key] ?? NaN;
  const row = stats?.[key];
  return row && (STAT_NAMES as readonly string[]).includes(name) ? row[name as StatName] : NaN;
}

/** Values of `name` for every (layer, head), layer-major; null while a built-in statistic waits for its layers. */
export function statValues(ctx: ViewContext, info: KindInfo, name: string): number[] | null {
  const user = info.user_stats?.[name];
  if (user) return Array.from(user);
  const stats = ctx.derived.stats(info.name);
  return stats ? stats.map((r) => statOf(info, stats, name, r.layer * info.heads + r.head)) : null;
}

/**
 * Panels painting `values` (layer-major) in the grid `layout`, light to dark from the smallest to the
 * largest finite value; [panels, lowest, highest].
 */
export function valuePanels(values: readonly number[] | null, info: KindInfo,
  layout: MultiplesLayout & { transposed: boolean }, badge: (key: number) => string | undefined): [Panel[], number, number] {
  const finite = values?.filter(Number.isFinite) ?? [];
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const panels: Panel[] = [];
  for (let l = 0; l < info.layers; l++) {
    for (let x = 0; x < info.heads; x++) {
      const key = l * info.heads + x;
      const v = values?.[key];
      // Squared, because the palette takes square roots: the colour is then linear in v.
      const t = v === undefined || !Number.isFinite(v) ? NaN : hi > lo ? ((v - lo) / (hi - lo)) ** 2 : 0.25;
      panels.push({
        row: layout.transposed ? x : l, col: layout.transposed ? l : x, key, badge: badge(key),
        pooled: values ? { data: Float32Array.of(t), rows: 1, cols: 1, aspect: 1 } : null,
      });
    }
  }
  return [panels, lo, hi];
}
