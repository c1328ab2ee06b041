/**
 * The explorer: toolbar plus linked arc and matrix views over any AttentionSource, driven by
 * one SelectionStore. Knows nothing about anywidget, so static reports can reuse it.
 */

import { MatrixCache } from "./aggregate";
import { detectDark, errorBox, errorMessage, h } from "./dom";
import { layerKey, type AttentionSource } from "./source";
import { corrections, type Selection, type SelectionStore } from "./state";
import { ArcView, type ArcOptions } from "./views/arc";
import { Controls } from "./views/controls";
import { MatrixView, type MatrixOptions } from "./views/matrix";
import type { Changes, Theme, ViewContext } from "./views/view";

export interface ExplorerOptions {
  /** Force a dark (true) or light (false) palette; default: follow the page's theme. */
  dark?: boolean;
  arc?: ArcOptions;
  matrix?: MatrixOptions;
  /** Called with every error shown in the widget (after it is shown). */
  onError?: (err: unknown) => void;
}

const MAX_ERRORS = 3;

/**
 * Build the explorer inside `el` and keep it in step with `store`. Returns the cleanup function,
 * which removes everything it added and stops listening.
 */
export function renderExplorer(
  el: HTMLElement,
  source: AttentionSource,
  store: SelectionStore,
  opts: ExplorerOptions = {},
): () => void {
  const root = h("div", "txm-root");
  const theme: Theme = { dark: opts.dark ?? detectDark(el) };
  root.classList.toggle("txm-dark", theme.dark);
  const errors = h("div", "txm-errors");
  let destroyed = false;

  const report = (err: unknown, title?: string) => {
    console.error("tx_magic:", err);
    const message = errorMessage(err);
    const shown = Array.from(errors.querySelectorAll(".txm-error-message")).some((m) => m.textContent === message);
    if (!shown) {
      while (errors.childElementCount >= MAX_ERRORS) errors.firstElementChild?.remove();
      errors.append(errorBox(err, title));
    }
    opts.onError?.(err);
  };
  store.setErrorHandler((err) => report(err));

  const ctx: ViewContext = { source, store, theme, matrices: new MatrixCache(), report: (err) => report(err) };
  const controls = new Controls(ctx);
  const arc = new ArcView(ctx, opts.arc);
  const matrix = new MatrixView(ctx, opts.matrix);
  const views = h("div", "txm-views");
  const placeholder = h("div", "txm-placeholder");
  views.append(arc.element, matrix.element, placeholder);
  const setStatus = (text: string) => {
    controls.setStatus(text);
    placeholder.textContent = text;
  };
  root.append(controls.element, errors, views);
  el.append(root);

  let requested: string | null = null;
  const failed = new Set<string>();

  const refresh = (changes: Changes) => {
    if (destroyed) return;
    const s = store.get();
    const fix = corrections(source.meta, s);
    if (Object.keys(fix).length > 0) {
      store.set(fix); // notifies again, and that refresh draws
      return;
    }
    controls.update(s, changes);
    if (typeof changes !== "string" && (changes.has("kind") || changes.has("layer"))) failed.clear();
    const layer = source.peekLayer(s.kind, s.layer);
    if (!layer) {
      const key = layerKey(s.kind, s.layer);
      views.classList.add("txm-stale");
      if (failed.has(key)) {
        setStatus(`layer ${s.layer} unavailable`);
        return;
      }
      setStatus(`loading layer ${s.layer}…`);
      if (requested !== key) {
        requested = key;
        source.getLayer(s.kind, s.layer).then(
          () => {
            if (requested === key) requested = null;
            const now = store.get();
            if (!destroyed && layerKey(now.kind, now.layer) === key) guarded("all");
          },
          (err: unknown) => {
            if (requested === key) requested = null;
            failed.add(key);
            if (destroyed) return;
            const now = store.get();
            if (layerKey(now.kind, now.layer) === key) setStatus(`layer ${s.layer} unavailable`);
            report(err, `tx_magic could not load ${s.kind} layer ${s.layer}`);
          },
        );
      }
      return;
    }
    setStatus("");
    views.classList.remove("txm-stale");
    arc.update(s, layer, changes);
    matrix.update(s, layer, changes);
    if (arc.drawn && matrix.drawn && root.dataset.ready !== "1") root.dataset.ready = "1";
  };

  const guarded = (changes: Changes) => {
    try {
      refresh(changes);
    } catch (err) {
      report(err);
    }
  };

  const unsubscribe = store.subscribe((_s: Readonly<Selection>, changed) => guarded(changed));

  // Size changes (pane resized, stacked vs side by side): recompute geometry on the next frame.
  let frame = 0;
  const later = (fn: () => void) => {
    if (frame) return;
    const raf = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (cb: FrameRequestCallback) => setTimeout(() => cb(0), 16) as unknown as number;
    frame = raf(() => {
      frame = 0;
      fn();
    });
  };
  let lastWidth = -1;
  const resizer = typeof ResizeObserver === "function"
    ? new ResizeObserver(() => {
        const width = root.clientWidth;
        if (width === lastWidth) return;
        lastWidth = width;
        later(() => guarded("resize"));
      })
    : null;
  resizer?.observe(root);

  // Theme switches (JupyterLab / VS Code set attributes and classes on <body>).
  const themer = opts.dark === undefined && typeof MutationObserver === "function" && el.ownerDocument?.body
    ? new MutationObserver(() => {
        const dark = detectDark(el);
        if (dark === theme.dark) return;
        theme.dark = dark;
        root.classList.toggle("txm-dark", dark);
        guarded("all");
      })
    : null;
  themer?.observe(el.ownerDocument.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-light", "data-jp-theme-name"] });

  guarded("all");

  return () => {
    if (destroyed) return;
    destroyed = true;
    unsubscribe();
    resizer?.disconnect();
    themer?.disconnect();
    if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
    controls.destroy();
    arc.destroy();
    matrix.destroy();
    root.remove();
  };
}
