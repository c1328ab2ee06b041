/**
 * The anywidget entry point. Builds a LayerStore from the `_meta` / `_layers` traits (fetching
 * other layers over the view's request channel, rpc.ts), binds the selection to the model's
 * traits, renders the explorer and answers Python's export requests. Any failure shows a visible error box in the
 * widget, never a blank area.
 */

import "./style.css";
import "./views/internals.css";
import "./views/interventions.css";
import "./views/valueflow.css";
import { watchConnection } from "./connection";
import { errorBox, clear } from "./dom";
import { renderExplorer, type ExplorerApi, type ExplorerExtras, type TabName } from "./render";
import { decodePatching } from "./patching";
import { decodeCensus } from "./views/census";
import { internalsFromModel } from "./internals";
import { openChannel, type Answer, type Channel } from "./rpc";
import { LayerStore, type Fetchers, type LayerData } from "./source";
import { SelectionStore } from "./state";
import { bindModel, selectionFromModel, type WidgetModel } from "./sync";
import { ValueWeights } from "./values";
import { channelAnalyses } from "./analyses";
import {
  decodeBlock, decodeTopK, decodeValueNorms, EXPORT_FORMATS, EXPORT_MAX_BYTES, REQUEST_BLOCK, REQUEST_EXPORT, REQUEST_LAYER,
  REQUEST_TOPK, REQUEST_VALUE_NORMS, unchecked, type ExportFormat, type WireCensusPanel, type WireComparisonPanel,
  type WireExportReply, type WireExportRequest, type WireTrainingPanel, type WireUserView,
} from "./wire";

/** A trait holding an object, or undefined when it is absent or empty ({} is the traits' default). */
function objectTrait<T>(model: WidgetModel, name: string): T | undefined {
  const v = model.get(name);
  return v && typeof v === "object" && Object.keys(v).length > 0 ? (v as T) : undefined;
}

/** The pattern library's panels and the user's views, from the widget's optional traits. */
export function extrasFromModel(model: WidgetModel): ExplorerExtras {
  const views = model.get("_views");
  const census = objectTrait<WireCensusPanel>(model, "_census");
  const step = model.get("step");
  const save = (name: string, value: unknown) => {
    model.set(name, value);
    model.save_changes();
  };
  return {
    views: Array.isArray(views) ? (views as WireUserView[]) : [],
    census: census ? decodeCensus(census) : undefined,
    showInput: (input) => save("census_input", input),
    compare: objectTrait<WireComparisonPanel>(model, "_compare"),
    training: objectTrait<WireTrainingPanel>(model, "_training"),
    step: typeof step === "number" ? step : 0,
    onStep: (s) => save("step", s),
  };
}

/** The LayerStore's fetchers over `channel`: whole layers, exact windows and top keys. */
export function channelFetchers(channel: Channel): Fetchers {
  const block = ({ content, buffers }: Answer): LayerData => decodeBlock(content, buffers);
  return {
    layer: (kind, layer, want) => channel.request(REQUEST_LAYER, { kind, layer, ...want }).then(block),
    block: (kind, layer, w) => channel.request(REQUEST_BLOCK, { kind, layer, q0: w.q0, q1: w.q1, k0: w.k0, k1: w.k1 }).then(block),
    topk: (kind, layer) => channel.request(REQUEST_TOPK, { kind, layer }).then(({ content, buffers }) => decodeTopK(content, buffers)),
  };
}

/** Each kind's value norms, asked of Python over `channel` the first time value weighting is chosen. */
export function channelValues(channel: Channel): ValueWeights {
  return new ValueWeights((kind) => channel.request(REQUEST_VALUE_NORMS, { kind })
    .then(({ content, buffers }) => decodeValueNorms(content, buffers)));
}

/**
 * Answer Python's `save_png` / `save_svg` (REQUEST_EXPORT) with the picture's bytes, or with the
 * reason it cannot be had (e.g. over the 10 MiB a browser may send to the kernel). Returns the
 * function that stops answering.
 */
export function exportResponder(channel: Channel, api: ExplorerApi): () => void {
  return channel.serve(REQUEST_EXPORT, async (raw) => {
    const request = unchecked<WireExportRequest>(raw, "an export request");
    const format = request.format as ExportFormat;
    if (!EXPORT_FORMATS.includes(format)) {
      throw new Error(`unknown format ${String(request.format)}; expected ${EXPORT_FORMATS.join(" or ")}`);
    }
    const scale = typeof request.scale === "number" && request.scale > 0 ? request.scale : 2;
    const bytes = await api.exportPicture(format, scale);
    if (bytes.byteLength > EXPORT_MAX_BYTES) {
      const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
      throw new Error(`the ${format.toUpperCase()} is ${mb(bytes.byteLength)} MB, over the ${mb(EXPORT_MAX_BYTES)} MB a browser ` +
        `may send to the kernel${format === "png" ? ": use a smaller scale, or save_svg" : ": use save_png"}, ` +
        "or the Export button, which downloads in the browser");
    }
    return { content: { format } satisfies WireExportReply, buffers: [bytes] };
  });
}

/** Render the widget for `model` into `el`; returns the cleanup. */
export function renderWidget(model: WidgetModel, el: HTMLElement): () => void {
  let teardown: () => void = () => {};
  let closed = false;
  // The tab the user opened stays open when a rerun (an ablation, an edit) replaces the data.
  let tab: TabName | "none" | undefined;

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
      const channel = openChannel(model);
      disposers.push(channel.dispose);
      const source = LayerStore.fromWire(model.get("_meta"), model.get("_layers"), channelFetchers(channel));
      const store = new SelectionStore(selectionFromModel(model, source.meta));
      const patching = decodePatching(model.get("_patching"));
      disposers.push(renderExplorer(el, source, store, {
        onApi: (api) => disposers.push(exportResponder(channel, api)), internals: internalsFromModel(model, channel),
        reruns: { state: model.get("_reruns"), send: (type, payload) => channel.request(type, payload as never) },
        patching, tab: tab ?? (patching ? "effects" : undefined), onTab: (name) => {
          tab = name;
        },
        values: channelValues(channel), analyses: channelAnalyses(channel),
        extras: extrasFromModel(model), link: channel.meter,
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
