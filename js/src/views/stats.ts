/**
 * Statistics panel: one statistic over the layers x heads grid (small colour cells), and a
 * sortable table of every head's statistics with inline bars. Both follow the selection and
 * select a layer and head on click. The numbers are js/src/stats.ts's, equal to Python's
 * `trace.stats()`.
 */

import { clear, h, listenGuarded } from "../dom";
import type { Selection } from "../state";
import { STAT_NAMES, type HeadStats, type StatName } from "../stats";
import { kindInfo, type KindInfo } from "../wire";
import { gridLayout } from "./grid";
import { badgeOf, TYPE_NAME, typeLegend } from "./headtypes";
import { Multiples } from "./multiples";
import { Preview } from "./preview";
import { isUserStat, statNames, statOf, valuePanels } from "./statcolor";
import { missingLayersNote } from "./tabs";
import { focusOnly, type Changes, type PanelView, type ViewContext } from "./view";

/** A column: layer, head, type, a built-in statistic, or one a user registered (by its name). */
type Column = "layer" | "head" | "type" | StatName | (string & {});

const COLUMNS: { key: Column; label: string; title: string }[] = [
  { key: "layer", label: "layer", title: "layer" },
  { key: "head", label: "head", title: "head" },
  { key: "type", label: "type", title: "head type (conservative: most heads get none)" },
  { key: "entropy", label: "entropy", title: "mean row entropy, nats" },
  { key: "max_weight", label: "max", title: "mean of each row's largest weight" },
  { key: "dispersion", label: "dispersion", title: "1 - max" },
  { key: "distance", label: "distance", title: "mean distance attended over, in tokens" },
  { key: "first", label: "first", title: "share on the first token (sink)" },
  { key: "previous", label: "previous", title: "share on the previous token" },
  { key: "self", label: "self", title: "share on the token itself" },
];

/** Rows sorted by `column` (NaN and empty types last), stable; `read` reads columns the rows lack. */
export function sortStats(rows: readonly HeadStats[], column: Column, descending: boolean,
  read?: (r: HeadStats) => number): HeadStats[] {
  const value = (r: HeadStats): number | string =>
    column === "type" ? r.type : read ? read(r) : (r as unknown as Record<string, number>)[column];
  return [...rows].sort((a, b) => {
    const x = value(a), y = value(b);
    const missX = x === "" || (typeof x === "number" && Number.isNaN(x));
    const missY = y === "" || (typeof y === "number" && Number.isNaN(y));
    if (missX || missY) return missX === missY ? 0 : missX ? 1 : -1;
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "–");

export class StatsView implements PanelView {
  readonly element: HTMLElement;
  readonly title = "Statistics";
  private readonly statSelect: HTMLSelectElement;
  private readonly multiples: Multiples;
  private readonly preview = new Preview();
  private readonly legendHost: HTMLElement;
  private readonly tableScroll: HTMLElement;
  private readonly tbody: HTMLTableSectionElement;
  private readonly headCells = new Map<Column, HTMLTableCellElement>();
  private readonly headRow: HTMLTableRowElement;
  /** The user's statistics shown as columns (the kind's `user_stats`). */
  private userNames: string[] = [];
  private sortBy: Column = "layer";
  private descending = false;
  private rowEls = new Map<number, HTMLTableRowElement>();
  private builtKey = "";
  private readonly note: HTMLElement;
  private selectedKey = -1;
  private heads = 0;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext) {
    this.element = h("div", "txm-panel txm-stats");
    this.element.dataset.view = "stats";
    const header = h("div", "txm-view-header");
    this.statSelect = h("select", "txm-stat-select");
    this.statSelect.setAttribute("aria-label", "statistic shown over the grid");
    for (const name of STAT_NAMES) {
      const o = h("option", "", COLUMNS.find((c) => c.key === name)?.label ?? name);
      o.value = name;
      this.statSelect.append(o);
    }
    this.statSelect.value = "entropy";
    this.note = h("span", "txm-hint", "");
    header.append(h("span", "txm-view-title", "Per-head statistics"), this.statSelect, this.note);
    this.multiples = new Multiples((key, e) => this.onHover(key, e), (key) => this.select(key));
    this.legendHost = h("div", "");
    const gridBox = h("div", "txm-stats-grid");
    gridBox.append(this.multiples.element, this.legendHost);

    const table = h("table", "txm-stats-table");
    const thead = h("thead");
    const tr = h("tr");
    this.headRow = tr;
    for (const col of COLUMNS) {
      const th = h("th", "", col.label);
      th.title = col.title;
      th.dataset.column = col.key;
      th.setAttribute("aria-sort", "none");
      tr.append(th);
      this.headCells.set(col.key, th);
    }
    thead.append(tr);
    this.tbody = h("tbody");
    table.append(thead, this.tbody);
    this.tableScroll = h("div", "txm-stats-scroll");
    this.tableScroll.append(table);
    const body = h("div", "txm-stats-body");
    body.append(gridBox, this.tableScroll);
    this.element.append(header, body, this.preview.element);

    this.listen(this.statSelect, "change", () => {
      this.builtKey = "";
      this.update(this.ctx.store.get(), "all");
    });
    this.listen(thead, "click", (e) => {
      const column = (e.target as Element).closest?.("th")?.getAttribute("data-column") as Column | null;
      if (!column) return;
      this.descending = this.sortBy === column ? !this.descending : column !== "layer" && column !== "head";
      this.sortBy = column;
      this.builtKey = "";
      this.update(this.ctx.store.get(), "all");
    });
    this.listen(this.tbody, "click", (e) => {
      const row = (e.target as Element).closest?.("tr");
      if (row?.dataset.key) this.select(Number(row.dataset.key));
    });
  }

  private listen(target: EventTarget, type: string, fn: (e: Event) => void): void {
    this.cleanups.push(listenGuarded(target, type, fn, (err) => this.ctx.report(err)));
  }

  /** Streamed kinds bring their statistics in the metadata; others compute them from every layer. */
  needsAllLayers(s: Readonly<Selection>): boolean {
    return !kindInfo(this.ctx.source.meta, s.kind).stats;
  }

  /** Columns and grid choices for the kind's user statistics (registered in Python, sent with the data). */
  private syncUserColumns(info: KindInfo): void {
    const names = statNames(info).filter((n) => isUserStat(info, n));
    if (names.join("\u0000") === this.userNames.join("\u0000")) return;
    for (const name of this.userNames) this.headCells.get(name)?.remove();
    for (const name of this.userNames) this.headCells.delete(name);
    for (const o of Array.from(this.statSelect.options)) if (o.dataset.user) o.remove();
    this.userNames = names;
    for (const name of names) {
      const th = h("th", "txm-user-stat", name);
      th.title = `${name}: a statistic registered in Python (tx_magic.register_statistic)`;
      th.dataset.column = name;
      th.setAttribute("aria-sort", "none");
      this.headRow.append(th);
      this.headCells.set(name, th);
      const o = h("option", "", name);
      o.value = name;
      o.dataset.user = "1";
      this.statSelect.append(o);
    }
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    if (focusOnly(changes)) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    this.heads = info.heads;
    this.syncUserColumns(info);
    const stats = this.ctx.derived.stats(s.kind);
    const width = this.element.clientWidth || 640;
    const key = [s.kind, s.weighting, stats !== null, this.ctx.theme.dark, width, this.statSelect.value, this.sortBy, this.descending].join("|");
    if (key !== this.builtKey) {
      this.builtKey = key;
      this.build(stats, info.layers, info.heads, width);
    }
    const selected = s.head >= 0 ? s.layer * info.heads + s.head : -1;
    this.multiples.mark(selected >= 0 ? [selected] : []);
    if (selected !== this.selectedKey) {
      this.rowEls.get(this.selectedKey)?.classList.remove("txm-selected");
      const row = this.rowEls.get(selected);
      row?.classList.add("txm-selected");
      this.selectedKey = selected;
      if (row) {
        const top = row.offsetTop, bottom = top + row.offsetHeight, view = this.tableScroll;
        if (top < view.scrollTop + 24 || bottom > view.scrollTop + view.clientHeight) view.scrollTop = Math.max(0, top - view.clientHeight / 2);
      }
    }
  }

  private build(stats: HeadStats[] | null, layers: number, heads: number, width: number): void {
    this.note.replaceChildren(missingLayersNote(this.ctx, this.ctx.store.get().kind) ?? "means over query rows; click a head to select it");
    clear(this.tbody);
    this.rowEls.clear();
    this.selectedKey = -1;
    for (const [column, th] of this.headCells) {
      th.setAttribute("aria-sort", column === this.sortBy ? (this.descending ? "descending" : "ascending") : "none");
    }
    const stat = this.statSelect.value;
    const info = kindInfo(this.ctx.source.meta, this.ctx.store.get().kind);
    const layout = gridLayout(layers, heads, Math.min(width * 0.42, 420));
    const values = stats || isUserStat(info, stat)
      ? Array.from({ length: layers * heads }, (_, key) => statOf(info, stats, stat, key)) : null;
    const [panels, lo, hi] = valuePanels(values, info, layout, (key) => badgeOf(stats?.[key]));
    this.multiples.draw(panels, layout, this.ctx.theme.dark, `${stat} of every head`);
    clear(this.legendHost);
    if (Number.isFinite(lo)) this.legendHost.append(h("div", "txm-hint", `${stat}: ${fmt(lo)} (light) to ${fmt(hi)} (dark)`));
    this.legendHost.append(typeLegend(stats));
    if (!stats) return;
    const key = (r: HeadStats) => r.layer * heads + r.head;
    const user = STAT_NAMES.includes(this.sortBy as StatName) ? undefined : (r: HeadStats) => statOf(info, stats, this.sortBy, key(r));
    const rows = sortStats(stats, this.sortBy, this.descending, user);
    const maxOf = STAT_NAMES.map((name) => Math.max(1e-12, ...stats.map((r) => r[name]).filter(Number.isFinite)));
    const userMax = this.userNames.map((name) => Math.max(1e-12, ...stats.map((r) => statOf(info, stats, name, key(r))).filter(Number.isFinite)));
    for (const r of rows) {
      const tr = h("tr");
      tr.dataset.key = String(r.layer * heads + r.head);
      tr.append(h("td", "", String(r.layer)), h("td", "", String(r.head)), h("td", "txm-type-cell", r.type ? TYPE_NAME[r.type] : ""));
      for (const [n, name] of STAT_NAMES.entries()) {
        const td = h("td", "txm-num", fmt(r[name]));
        if (Number.isFinite(r[name])) td.style.setProperty("--txm-bar", `${Math.round((100 * r[name]) / maxOf[n])}%`);
        tr.append(td);
      }
      for (const [n, name] of this.userNames.entries()) {
        const v = statOf(info, stats, name, key(r));
        const td = h("td", "txm-num txm-user-stat", fmt(v));
        if (Number.isFinite(v) && v > 0) td.style.setProperty("--txm-bar", `${Math.round((100 * v) / userMax[n])}%`);
        tr.append(td);
      }
      this.rowEls.set(r.layer * heads + r.head, tr);
      this.tbody.append(tr);
    }
  }

  private select(key: number): void {
    this.ctx.store.set({ layer: Math.floor(key / this.heads), head: key % this.heads });
  }

  private onHover(key: number | null, e: MouseEvent): void {
    if (key === null) {
      this.preview.hide();
      return;
    }
    const r = this.ctx.derived.stats(this.ctx.store.get().kind)?.[key];
    if (!r) return;
    const stat = this.statSelect.value;
    const info = kindInfo(this.ctx.source.meta, this.ctx.store.get().kind);
    this.preview.show(this.element, e, null, [`layer ${r.layer} · head ${r.head}`, `${stat} ${fmt(statOf(info, this.ctx.derived.stats(info.name), stat, key))}`,
      r.type ? `type: ${TYPE_NAME[r.type]}` : "type: none"], this.ctx.theme.dark);
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.multiples.destroy();
    this.element.remove();
  }
}
