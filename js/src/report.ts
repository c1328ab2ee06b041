/**
 * The entry point of a static HTML report (bundled as an IIFE and inlined into the page by
 * tx_magic/report/html.py). Reads the inlined JSON, builds a LayerStore per text and renders the
 * same explorer as the widget. No kernel, no loader, no network: everything is in the page.
 *
 * The page holds `<script type="application/json" id="txm-report-data">` (the header below) and
 * one `<script type="application/json" id="txm-trace-N">` per text ({meta, layers} and, when patched,
 * `patching`: the widget's wire format with base64 bytes), parsed only when that text is shown. Text goes into the page
 * through textContent only.
 */

import { clear, errorBox, h } from "./dom";
import { decodePatching } from "./patching";
import { renderExplorer, type ExplorerExtras } from "./render";
import { decodeCensus, type CensusData } from "./views/census";
import type { WireCensusPanel } from "./wire";
import { LayerStore } from "./source";
import { SelectionStore, type Selection } from "./state";
import { ValueWeights } from "./values";
import { decodeValueNorms } from "./wire";

export const HEADER_ID = "txm-report-data";
export const ROOT_ID = "txm-report";

/** Layers of one kind left out of a text's data to keep the report under its budget. */
export interface Omitted {
  kind: string;
  layers: number[];
}

/** One text of the report: what was run, and what of its attention the page holds. */
export interface ReportText {
  label: string;
  text: string;
  pair?: string | null;
  target?: string | null;
  omitted: Omitted[];
}

/** What the report opens on (a drop-in bertviz call's `layer` and `heads`); the explorer corrects what does not fit. */
export interface OpeningSelection {
  kind?: string;
  layer?: number;
  heads?: number[];
  head?: number;
}

/** The report header (`#txm-report-data`). */
export interface ReportHeader {
  title: string;
  generator: string;
  max_bytes: number;
  texts: ReportText[];
  /** Names of the user views (tx_magic.register_view) the page's import map holds, as txm-view:<index>. */
  views: string[];
  /** A census report's census (its `texts` map inputs to this report's texts). */
  census?: CensusData;
  selection?: OpeningSelection;
}

const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= -1;

/** The header's opening selection, keeping only well-formed fields. */
export function decodeSelection(raw: unknown): OpeningSelection {
  if (!raw || typeof raw !== "object") return {};
  const r = raw as Record<string, unknown>;
  const out: OpeningSelection = {};
  if (typeof r.kind === "string") out.kind = r.kind;
  if (isIndex(r.layer) && r.layer >= 0) out.layer = r.layer;
  if (Array.isArray(r.heads) && r.heads.length > 0 && r.heads.every((h) => isIndex(h) && h >= 0)) {
    out.heads = r.heads as number[];
  }
  if (isIndex(r.head)) out.head = r.head;
  return out;
}

export function traceId(index: number): string {
  return `txm-trace-${index}`;
}

function readJson(doc: Document, id: string): unknown {
  const node = doc.getElementById(id);
  if (!node) throw new Error(`tx_magic: this report has no data element #${id}`);
  try {
    return JSON.parse(node.textContent ?? "");
  } catch (err) {
    throw new Error(`tx_magic: the report's #${id} is not valid JSON (${String(err)}); was the file cut short?`);
  }
}

/** Validate the report header. */
export function decodeHeader(raw: unknown): ReportHeader {
  const r = raw as Partial<ReportHeader> | null;
  if (!r || typeof r !== "object" || !Array.isArray(r.texts) || r.texts.length === 0) {
    throw new Error("tx_magic: the report header lists no texts");
  }
  return {
    title: String(r.title ?? "tx_magic report"),
    generator: String(r.generator ?? "tx_magic"),
    max_bytes: Number(r.max_bytes ?? 0),
    texts: r.texts.map((t) => ({
      label: String(t.label ?? ""),
      text: String(t.text ?? ""),
      pair: t.pair == null ? null : String(t.pair),
      target: t.target == null ? null : String(t.target),
      omitted: Array.isArray(t.omitted) ? t.omitted : [],
    })),
    views: Array.isArray(r.views) ? r.views.map(String) : [],
    ...(r.census ? { census: decodeCensus(r.census as unknown as WireCensusPanel) } : {}),
    selection: decodeSelection(r.selection),
  };
}

/** The inlined data of text `index`. */
export function readTrace(doc: Document, index: number): { meta?: unknown; layers?: unknown; patching?: unknown } {
  return readJson(doc, traceId(index)) as { meta?: unknown; layers?: unknown; patching?: unknown };
}

/** A user view of the report, through the page's import map (its hash is in the page's policy). */
function importView(index: number): Promise<unknown> {
  return import(/* @vite-ignore */ `txm-view:${index}`);
}

/** The LayerStore of text `index`: its inlined layers; a left-out layer rejects, saying why. */
export function loadText(doc: Document, header: ReportHeader, index: number, raw = readTrace(doc, index)): LayerStore {
  const omitted = header.texts[index].omitted;
  const megabytes = (header.max_bytes / 1e6).toFixed(1);
  return LayerStore.fromWire(raw.meta, raw.layers, (kind, layer) =>
    Promise.reject(new Error(
      omitted.some((o) => o.kind === kind && o.layers.includes(layer))
        ? `${kind} layer ${layer} was left out of this report to keep it under ${megabytes} MB. ` +
            "Write the report with a larger budget (--max-bytes, or max_bytes=...) or fewer tokens to include it."
        : `${kind} layer ${layer} is not in this report's data`,
    )));
}

/** The value norms text `index` inlines (for its "value" weighting), one per kind; none in older reports. */
export function loadValues(doc: Document, index: number): ValueWeights {
  const raw = readJson(doc, traceId(index)) as { values?: { content: unknown; buffers: string[] }[] };
  return new ValueWeights(undefined, (raw.values ?? []).map((v) => decodeValueNorms(v.content, v.buffers)));
}

function describeText(t: ReportText): string {
  if (t.target != null) return `${t.text}  →  ${t.target}`;
  if (t.pair != null) return `${t.text}  ‖  ${t.pair}`;
  return t.text;
}

/** Build the whole report page inside `host`; returns the cleanup. */
export function renderReport(host: HTMLElement, header: ReportHeader): () => void {
  const doc = host.ownerDocument;
  const head = h("header", "txm-report-head");
  head.append(h("h1", "txm-report-title", header.title));
  const textLine = h("div", "txm-report-text");
  const shown = h("span", "txm-report-source");
  const select = header.texts.length > 1 ? h("select", "txm-text-select") : null;
  if (select) {
    select.setAttribute("aria-label", "text");
    header.texts.forEach((t, i) => {
      const option = h("option", "", t.label || `text ${i + 1}`);
      option.value = String(i);
      select.append(option);
    });
    textLine.append(h("span", "txm-label", `Text (${header.texts.length})`), select);
  }
  textLine.append(shown);
  head.append(textLine);
  const app = h("div", "txm-report-app");
  const foot = h("footer", "txm-report-foot", header.generator);
  host.append(head, app, foot);

  let dispose: () => void = () => {};
  let last: Partial<Selection> = { ...header.selection };

  const show = (index: number) => {
    dispose();
    dispose = () => {};
    clear(app);
    const text = header.texts[index];
    shown.textContent = describeText(text);
    app.dataset.text = String(index);
    try {
      const raw = readTrace(doc, index);
      const source = loadText(doc, header, index, raw);
      const patching = decodePatching(raw.patching);
      const first = source.meta.kinds[0];
      // Keep what the reader chose when switching texts; the explorer corrects what does not fit.
      const initial: Partial<Selection> = { kind: first.name, heads: Array.from({ length: first.heads }, (_, i) => i), ...last };
      if (!source.peekLayer(initial.kind ?? first.name, initial.layer ?? 0)) initial.layer = 0;
      const store = new SelectionStore(initial);
      const census = header.census;
      const extras: ExplorerExtras = {
        views: header.views.map((name) => ({ name, source: "" })),
        loadView: (_view, i) => importView(i),
        ...(census ? {
          census: { ...census, current: census.texts?.indexOf(index) ?? census.current },
          showInput: (input: number) => {
            const target = census.texts?.[input] ?? -1;
            if (target < 0) return;
            if (select) select.value = String(target);
            show(target);
          },
        } : {}),
      };
      const stop = renderExplorer(app, source, store, {
        values: loadValues(doc, index), extras, ...(patching ? { patching, tab: "effects" as const } : {}),
      });
      dispose = () => {
        const s = store.get();
        last = { kind: s.kind, layer: s.layer, heads: s.heads, head: s.head, weighting: s.weighting };
        stop();
      };
    } catch (err) {
      console.error("tx_magic:", err);
      app.append(errorBox(err, "tx_magic could not show this text"));
    }
  };

  const onSelect = () => {
    if (select) show(Number(select.value));
  };
  select?.addEventListener("change", onSelect);
  show(0);
  return () => {
    select?.removeEventListener("change", onSelect);
    dispose();
    clear(host);
  };
}

/** Render the report of `doc` into its #txm-report element; errors become a visible box. */
export function main(doc: Document = document): void {
  const host = doc.getElementById(ROOT_ID) ?? doc.body;
  clear(host);
  try {
    renderReport(host, decodeHeader(readJson(doc, HEADER_ID)));
  } catch (err) {
    console.error("tx_magic:", err);
    host.append(errorBox(err, "tx_magic could not open this report"));
  }
}

if (typeof document !== "undefined" && document.getElementById(HEADER_ID)) main();
