/**
 * The anywidget entry point. Builds a LayerStore from the `_meta` / `_layers` traits (fetching
 * other layers with custom messages), binds the selection to the model's traits, renders the
 * explorer and answers Python's export requests. Any failure shows a visible error box in the
 * widget, never a blank area.
 */

import "./style.css";
import "./views/internals.css";
import { watchConnection } from "./connection";
import { errorBox, errorMessage, clear } from "./dom";
import { renderExplorer, type ExplorerApi } from "./render";
import { internalsFromModel } from "./internals";
import { LayerStore, type Fetchers, type LayerData, type LayerWant } from "./source";
import { SelectionStore } from "./state";
import { bindModel, selectionFromModel, type WidgetModel } from "./sync";
import {
  decodeBlock, decodeTopK, EXPORT_FORMATS, EXPORT_MAX_BYTES, REPLY_BLOCK, REPLY_ERROR, REPLY_EXPORT, REPLY_EXPORT_ERROR,
  REPLY_LAYER, REPLY_TOPK, REQUEST_BLOCK, REQUEST_EXPORT, REQUEST_LAYER, REQUEST_TOPK, type ExportFormat,
} from "./wire";

export const FETCH_TIMEOUT_MS = 30_000;

interface Pending {
  /** The reply type that answers this request. */
  reply: string;
  kind: string;
  layer: number;
  resolve: (reply: { msg: Record<string, unknown>; buffers: unknown[] }) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Fetchers that ask Python over custom messages (REQUEST_LAYER, REQUEST_BLOCK, REQUEST_TOPK),
 * each request with an "id" that the reply echoes. Returns them with `dispose`, which stops
 * listening and fails whatever is still waiting. `fetch` is the whole-layer fetcher.
 */
export function messageFetcher(model: WidgetModel, timeoutMs = FETCH_TIMEOUT_MS) {
  const pending = new Map<string, Pending>();
  let counter = 0;

  /** The request a reply answers: by its echoed id, else (older kernels) the oldest of its kind and layer. */
  const find = (m: Record<string, unknown>): [string, Pending] | undefined => {
    if (typeof m.id === "string") {
      const byId = pending.get(m.id);
      if (byId) return [m.id, byId];
    }
    for (const entry of pending) {
      const p = entry[1];
      if (p.kind === String(m.kind) && p.layer === Number(m.layer) && (m.type === REPLY_ERROR || m.type === p.reply)) return entry;
    }
    return undefined;
  };

  const onMessage = (msg: unknown, buffers?: unknown[]) => {
    if (typeof msg !== "object" || msg === null) return;
    const m = msg as Record<string, unknown>;
    if (m.type !== REPLY_LAYER && m.type !== REPLY_BLOCK && m.type !== REPLY_TOPK && m.type !== REPLY_ERROR) return;
    const found = find(m);
    if (!found) return;
    const [id, waiting] = found;
    pending.delete(id);
    clearTimeout(waiting.timer);
    if (m.type === REPLY_ERROR) {
      waiting.reject(new Error(`Python could not send ${m.kind} layer ${m.layer}: ${String(m.message ?? "unknown error")}`));
    } else {
      waiting.resolve({ msg: m, buffers: buffers ?? [] });
    }
  };
  model.on("msg:custom", onMessage);

  const ask = (request: Record<string, unknown>, reply: string, what: string) =>
    new Promise<{ msg: Record<string, unknown>; buffers: unknown[] }>((resolve, reject) => {
      const id = `txm-${++counter}`;
      const kind = String(request.kind), layer = Number(request.layer);
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(
          `no reply from Python for ${what} after ${Math.round(timeoutMs / 1000)} s: ` +
            "is the kernel busy, restarted or gone? Re-run the cell to show the widget again.",
        ));
      }, timeoutMs);
      pending.set(id, { reply, kind, layer, resolve, reject, timer });
      try {
        model.send({ ...request, id });
      } catch (err) {
        clearTimeout(timer);
        pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });

  const fetch = (kind: string, layer: number, want?: LayerWant): Promise<LayerData> =>
    ask({ type: REQUEST_LAYER, kind, layer, ...(want ?? {}) }, REPLY_LAYER, `${kind} layer ${layer}`)
      .then(({ msg, buffers }) => decodeBlock(msg, buffers.length > 0 ? buffers : undefined));

  const fetchers: Fetchers = {
    layer: fetch,
    block: (kind, layer, w) =>
      ask({ type: REQUEST_BLOCK, kind, layer, ...w }, REPLY_BLOCK, `${kind} layer ${layer} cells ${w.q0}..${w.q1} x ${w.k0}..${w.k1}`)
        .then(({ msg, buffers }) => decodeBlock(msg, buffers.length > 0 ? buffers : undefined)),
    topk: (kind, layer) =>
      ask({ type: REQUEST_TOPK, kind, layer }, REPLY_TOPK, `${kind} top weights of layer ${layer}`)
        .then(({ msg, buffers }) => decodeTopK(msg, buffers.length > 0 ? buffers : undefined)),
  };

  const dispose = () => {
    model.off("msg:custom", onMessage);
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`request for ${p.kind} layer ${p.layer} cancelled: the view was closed`));
    }
    pending.clear();
  };
  return { fetch, fetchers, dispose };
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
      const source = LayerStore.fromWire(model.get("_meta"), model.get("_layers"), fetcher.fetchers);
      const store = new SelectionStore(selectionFromModel(model, source.meta));
      const inside = internalsFromModel(model);
      disposers.push(inside.dispose);
      disposers.push(renderExplorer(el, source, store, {
        onApi: (api) => disposers.push(exportResponder(model, api)), internals: inside.internals,
      }));
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
  const unwatch = watchConnection(model, el);
  return () => {
    closed = true;
    unwatch();
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
