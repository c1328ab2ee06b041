/**
 * A tab drawn by a user's ES module (tx_magic.register_view): the module travels with the data (the
 * widget's `_views` trait, a report's import map) and is imported by the host's loader, never fetched.
 * Its `render(view)` (a named export, or `default.render`) is called whenever the selection or the layer
 * changes, with the tab's element, the shared selection, the selected layer's weights, the tokens, and
 * `select(partial)` to change the selection; a function it returns is called before the next call.
 * The API is documented in tx_magic/wire/views.py.
 */

import { clear, errorBox, h } from "../dom";
import { focusToken, type Selection } from "../state";
import { kindInfo, type WireUserView } from "../wire";
import type { Changes, PanelView, ViewContext } from "./view";

/** Imports a view's module: the widget from a Blob URL, a report through its import map. */
export type ModuleLoader = (view: WireUserView, index: number) => Promise<unknown>;

/** What a view's render function receives. */
export interface UserViewContext {
  el: HTMLElement;
  selection: Readonly<Selection> & { token: number };
  layer: { kind: string; layer: number; heads: number; queries: number; keys: number; pool: number; data: Float32Array } | null;
  tokens: { queries: string[]; keys: string[] };
  select(partial: Partial<Selection>): void;
}

type Render = (view: UserViewContext) => unknown;

/** The render function of an imported module, or null. */
export function renderOf(module: unknown): Render | null {
  const m = module as { render?: unknown; default?: unknown } | null;
  if (typeof m?.render === "function") return m.render as Render;
  const d = m?.default as { render?: unknown } | ((...args: unknown[]) => unknown) | undefined;
  if (typeof d === "function") return d as Render;
  if (typeof d?.render === "function") return d.render as Render;
  return null;
}

/** The widget's loader: each module once per page, from a Blob URL of its source. */
const loaded = new Map<string, Promise<unknown>>();
export function blobLoader(view: WireUserView): Promise<unknown> {
  let pending = loaded.get(view.source);
  if (!pending) {
    const url = URL.createObjectURL(new Blob([view.source], { type: "text/javascript" }));
    pending = import(/* @vite-ignore */ url).finally(() => URL.revokeObjectURL(url));
    loaded.set(view.source, pending);
  }
  return pending;
}

export class UserView implements PanelView {
  readonly element: HTMLElement;
  readonly title: string;
  private readonly body: HTMLElement;
  private render: Render | null = null;
  private failed = false;
  private cleanup: (() => void) | null = null;
  private destroyed = false;

  constructor(private readonly ctx: ViewContext, view: WireUserView, index: number, load: ModuleLoader) {
    this.title = view.name;
    this.element = h("div", "txm-panel txm-user-view");
    this.element.dataset.view = `user-${index}`;
    this.element.dataset.name = view.name;
    this.body = h("div", "txm-user-body");
    this.element.append(this.body);
    load(view, index).then(
      (module) => {
        this.render = renderOf(module);
        if (!this.render) throw new Error(`the view "${view.name}" exports no render function`);
        if (!this.destroyed && !this.element.hidden) this.update(this.ctx.store.get(), "all");
      },
    ).catch((err: unknown) => {
      this.failed = true;
      if (this.destroyed) return;
      clear(this.body);
      this.body.append(errorBox(err, `tx_magic could not load the view "${view.name}"`));
    });
  }

  needsAllLayers(): boolean {
    return false;
  }

  update(s: Readonly<Selection>, _changes: Changes): void {
    if (!this.render || this.failed) return;
    const source = this.ctx.source;
    const info = kindInfo(source.meta, s.kind);
    const data = source.peekLayer(s.kind, s.layer) ?? source.peekOverview(s.kind, s.layer);
    if (!data && source.live) {
      source.getLayer(s.kind, s.layer).then(() => {
        if (!this.destroyed) this.update(this.ctx.store.get(), "all");
      }, (err: unknown) => this.ctx.report(err));
    }
    const [heads, queries, keys] = data?.shape ?? [info.heads, 0, 0];
    this.cleanup?.();
    this.cleanup = null;
    try {
      const result = this.render({
        el: this.body,
        selection: { ...s, heads: [...s.heads], token: focusToken(s) },
        layer: data ? { kind: s.kind, layer: s.layer, heads, queries, keys, pool: data.pool ?? 1, data: data.data } : null,
        tokens: { queries: [...source.meta.sequences[info.queries].text], keys: [...source.meta.sequences[info.keys].text] },
        select: (partial) => this.ctx.store.set(partial),
      });
      if (typeof result === "function") this.cleanup = result as () => void;
      this.element.dataset.drawn = "1";
    } catch (err) {
      clear(this.body);
      this.body.append(errorBox(err, `the view "${this.title}" failed`));
    }
  }

  destroy(): void {
    this.destroyed = true;
    this.cleanup?.();
    this.element.remove();
  }
}
