/**
 * The secondary row under the arc and matrix views: tabs for the overview grid, head
 * comparison, layer evolution and statistics. Only the open tab draws; clicking the open tab
 * folds the row away. The tab open from the start never makes the explorer fetch layers that
 * Python did not send (a long input's); a tab the user opens does.
 */

import { h } from "../dom";
import type { Selection } from "../state";
import type { Changes, PanelView, ViewContext } from "./view";

export class Tabs {
  readonly element: HTMLElement;
  private readonly buttons: HTMLButtonElement[] = [];
  private readonly body: HTMLElement;
  private open: number;
  private chosen = false;
  private readonly cleanups: (() => void)[] = [];

  /** `onSwitch` runs after a tab opens or the row folds (the explorer then loads and draws). */
  constructor(private readonly panels: PanelView[], initial: number, onSwitch: () => void) {
    this.open = initial;
    this.element = h("div", "txm-tabs");
    const bar = h("div", "txm-tab-bar");
    bar.setAttribute("role", "tablist");
    this.body = h("div", "txm-tab-body");
    panels.forEach((panel, i) => {
      const b = h("button", "txm-tab", panel.title);
      b.type = "button";
      b.setAttribute("role", "tab");
      b.dataset.tab = panel.element.dataset.view ?? String(i);
      const click = () => {
        this.open = this.open === i ? -1 : i;
        this.chosen = true;
        this.sync();
        onSwitch();
      };
      b.addEventListener("click", click);
      this.cleanups.push(() => b.removeEventListener("click", click));
      this.buttons.push(b);
      bar.append(b);
      panel.element.setAttribute("role", "tabpanel");
      this.body.append(panel.element);
    });
    this.element.append(bar, this.body);
    this.sync();
  }

  private sync(): void {
    this.buttons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === this.open));
      b.classList.toggle("txm-on", i === this.open);
    });
    this.panels.forEach((p, i) => {
      p.element.hidden = i !== this.open;
    });
    this.body.hidden = this.open < 0;
  }

  /** The open panel, or null when the row is folded. */
  get active(): PanelView | null {
    return this.panels[this.open] ?? null;
  }

  /** Whether the open tab needs every layer and the user asked for it (opened the tab). */
  needsAllLayers(s: Readonly<Selection>): boolean {
    return this.chosen && (this.active?.needsAllLayers(s) ?? false);
  }

  update(s: Readonly<Selection>, changes: Changes): void {
    this.active?.update(s, changes);
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    for (const p of this.panels) p.destroy();
    this.element.remove();
  }
}

/**
 * For a panel that draws every layer but has only some: "k of L layers here" and a button that
 * fetches the rest (they were left out because they are big). Null when all are here.
 */
export function missingLayersNote(ctx: ViewContext, kind: string): HTMLElement | null {
  const [have, total] = ctx.derived.progress(kind);
  if (have === total) return null;
  const note = h("span", "txm-missing");
  const load = h("button", "txm-link txm-load-all", `load all ${total} layers`);
  load.type = "button";
  load.addEventListener("click", () => ctx.loadAll(kind));
  note.append(h("span", "", `${have} of ${total} layers here · `), load);
  return note;
}
