/**
 * The anywidget entry point. Builds a LayerStore from the `_meta` / `_layers` traits (fetching
 * other layers with custom messages), binds the selection to the model's traits, renders the
 * explorer and answers Python's export requests. Any failure shows a visible error box in the
 * widget, never a blank area.
 */

import "./style.css";
import { errorBox, errorMessage, clear } from "./dom";
import { renderExplorer, type ExplorerApi } from "./render";
import { LayerStore, layerKey, type LayerData } from "./source";
import { SelectionStore } from "./state";
import { bindModel, selectionFromModel, type WidgetModel } from "./sync";
import {
  decodeBlock, EXPORT_FORMATS, EXPORT_MAX_BYTES, REPLY_ERROR, REPLY_EXPORT, REPLY_EXPORT_ERROR, REPLY_LAYER,
  REQUEST_EXPORT, REQUEST_LAYER, type ExportFormat,
} from "./wire";

export const FETCH_TIMEOUT_MS = 30_000;

interface Pending {
  resolve: (block: LayerData) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A fetcher that asks Python for a layer over custom messages. Returns it with `dispose`, which
 * stops listening and fails whatever is still waiting.
 */
export function messageFetcher(model: WidgetModel, timeoutMs = FETCH_TIMEOUT_MS) {
  const pending = new Map<string, Pending>();

  const onMessage = (msg: unknown, buffers?: unknown[]) => {
    if (typeof msg !== "object" || msg === null) return;
    const m = msg as Record<string, unknown>;
    const key = layerKey(String(m.kind), Number(m.layer));
    const waiting = pending.get(key);
    if (!waiting) return;
    if (m.type === REPLY_LAYER) {
      pending.delete(key);
      clearTimeout(waiting.timer);
      try {
        const data = buffers?.[0] ?? m.data;
        waiting.resolve(decodeBlock({ ...m, data }));
      } catch (err) {
        waiting.reject(err instanceof Error ? err : new Error(String(err)));
      }
    } else if (m.type === REPLY_ERROR) {
      pending.delete(key);
      clearTimeout(waiting.timer);
      waiting.reject(new Error(`Python could not send ${m.kind} layer ${m.layer}: ${String(m.message ?? "unknown error")}`));
    }
  };
  model.on("msg:custom", onMessage);

  const fetch = (kind: string, layer: number): Promise<LayerData> =>
    new Promise<LayerData>((resolve, reject) => {
      const key = layerKey(kind, layer);
      const timer = setTimeout(() => {
        pending.delete(key);
        reject(new Error(
          `no reply from Python for ${kind} layer ${layer} after ${Math.round(timeoutMs / 1000)} s: ` +
            "is the kernel busy, restarted or gone? Re-run the cell to show the widget again.",
        ));
      }, timeoutMs);
      pending.set(key, { resolve, reject, timer });
      try {
        model.send({ type: REQUEST_LAYER, kind, layer });
      } catch (err) {
        clearTimeout(timer);
        pending.delete(key);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });

  const dispose = () => {
    model.off("msg:custom", onMessage);
    for (const [key, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`request for ${key} cancelled: the view was closed`));
    }
    pending.clear();
  };
  return { fetch, dispose };
}

/**
 * Answer Python's `save_png` / `save_svg` (REQUEST_EXPORT) with the picture's bytes, or with
 * REPLY_EXPORT_ERROR saying why not (e.g. over the 10 MiB a browser may send to the kernel).
 * Returns the function that stops listening.
 */
export function exportResponder(model: WidgetModel, api: ExplorerApi): () => void {
  const onMessage = (msg: unknown) => {
    if (typeof msg !== "object" || msg === null) return;
    const m = msg as Record<string, unknown>;
    if (m.type !== REQUEST_EXPORT) return;
    const id = String(m.id);
    const fail = (message: string) => model.send({ type: REPLY_EXPORT_ERROR, id, message });
    const format = m.format as ExportFormat;
    if (!EXPORT_FORMATS.includes(format)) {
      fail(`unknown format ${String(m.format)}; expected ${EXPORT_FORMATS.join(" or ")}`);
      return;
    }
    const scale = typeof m.scale === "number" && m.scale > 0 ? m.scale : 2;
    api.exportPicture(format, scale).then(
      (bytes) => {
        if (bytes.byteLength > EXPORT_MAX_BYTES) {
          const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
          fail(`the ${format.toUpperCase()} is ${mb(bytes.byteLength)} MB, over the ${mb(EXPORT_MAX_BYTES)} MB a browser ` +
            `may send to the kernel${format === "png" ? ": use a smaller scale, or save_svg" : ": use save_png"}, ` +
            "or the Export button, which downloads in the browser");
          return;
        }
        model.send({ type: REPLY_EXPORT, id, format }, undefined, [bytes]);
      },
      (err: unknown) => fail(errorMessage(err)),
    );
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

/** Render the widget for `model` into `el`; returns the cleanup. */
export function renderWidget(model: WidgetModel, el: HTMLElement): () => void {
  let teardown: () => void = () => {};
  let closed = false;

  const mount = () => {
    teardown();
    clear(el);
    const disposers: (() => void)[] = [];
    teardown = () => {
      for (const fn of disposers.splice(0).reverse()) {
        try {
          fn();
        } catch (err) {
          console.error("tx_magic: cleanup failed", err);
        }
      }
    };
    try {
      const fetcher = messageFetcher(model);
      disposers.push(fetcher.dispose);
      const source = LayerStore.fromWire(model.get("_meta"), model.get("_layers"), fetcher.fetch);
      const store = new SelectionStore(selectionFromModel(model, source.meta));
      disposers.push(renderExplorer(el, source, store, { onApi: (api) => disposers.push(exportResponder(model, api)) }));
      disposers.push(bindModel(model, store, source.meta));
    } catch (err) {
      console.error("tx_magic:", err);
      teardown();
      clear(el);
      el.append(errorBox(err, "tx_magic could not show this trace"));
    }
  };

  // _meta and _layers usually change together: mount once for both.
  let queued = false;
  const remount = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      if (!closed) mount();
    });
  };
  model.on("change:_meta", remount);
  model.on("change:_layers", remount);
  mount();
  return () => {
    closed = true;
    model.off("change:_meta", remount);
    model.off("change:_layers", remount);
    teardown();
    clear(el);
  };
}

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }) {
    try {
      return renderWidget(model, el);
    } catch (err) {
      el.append(errorBox(err, "tx_magic could not show this trace"));
      return () => {};
    }
  },
};
