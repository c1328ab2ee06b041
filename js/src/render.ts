/**
 * The explorer: toolbar, linked arc and matrix views, and a tab row of secondary views
 * (overview grid, head comparison, layer evolution, statistics) over any AttentionSource,
 * driven by one SelectionStore. Keyboard control, export. Knows nothing about anywidget, so
 * static reports can reuse it.
 */

import { MatrixCache } from "./aggregate";
import { Derived } from "./derived";
import { detectDark, errorBox, errorMessage, h } from "./dom";
import { download, exportBytes, exportName } from "./exporter";
import { FrameCache } from "./frame";
import { keyAction } from "./keyboard";
import { showsRollout } from "./shown";
import { layerKey, type AttentionSource } from "./source";
import { LinkMeter } from "./link";
import { Prefetcher, wantNow, type Want } from "./prefetch";
import { corrections, type Selection, type SelectionStore } from "./state";
import { kindInfo, type ExportFormat } from "./wire";
import { ArcView, type ArcOptions } from "./views/arc";
import { Controls } from "./views/controls";
import { GridView } from "./views/grid";
import { HeadsView } from "./views/heads";
import { Help } from "./views/help";
import { LayersView } from "./views/layers";
import { MatrixView, type MatrixOptions } from "./views/matrix";
import { StatsView } from "./views/stats";
import { Tabs } from "./views/tabs";
import type { Internals } from "./internals";
import { GenerationView, stepFrame } from "./views/generation";
import { shownTokens } from "./internals";
import { HiddenView } from "./views/hidden";
import { ImageView } from "./views/image";
import { LensView } from "./views/lens";
import { NextTokenView } from "./views/next";
import type { Changes, PanelView, Theme, ViewContext } from "./views/view";
import { Interventions, type RerunSender } from "./interventions";
import type { Patching } from "./patching";
import { InterventionBanner } from "./views/banner";
import { EffectsView } from "./views/effects";
import { ValueWeights } from "./values";
import { offered, type AnalysisFetchers } from "./analyses";
import { FlowView } from "./views/flow";
import { QueriesKeysView } from "./views/qk";
import { ANALYSIS_FLOW, ANALYSIS_QK } from "./wire";
import { WeightedSource } from "./weighted";
import { CensusView, type CensusData } from "./views/census";
import { CompareView } from "./views/compare";
import { TrainingView } from "./views/training";
import { blobLoader, UserView, type ModuleLoader } from "./views/user";
import type { WireComparisonPanel, WireTrainingPanel, WireUserView } from "./wire";

/** The secondary views, in tab order. */
export const TABS = ["grid", "heads", "layers", "stats", "hidden", "lens", "next", "generation", "image", "flow", "qk",
  "census", "compare", "training", "view",
  "effects"] as const;
export type TabName = (typeof TABS)[number];

/** What the explorer offers its host once built (the widget answers Python's save_png with it). */
export interface ExplorerApi {
  /** The arc and matrix views as they are now shown, as PNG or SVG bytes. */
  exportPicture(format: ExportFormat, scale?: number): Promise<Uint8Array<ArrayBuffer>>;
}

export interface ExplorerOptions {
  /** Force a dark (true) or light (false) palette; default: follow the page's theme. */
  dark?: boolean;
  arc?: ArcOptions;
  matrix?: MatrixOptions;
  /** The secondary view open at first, or "none" to start with the tab row folded (default "grid"). */
  tab?: TabName | "none";
  /** Called with every error shown in the widget (after it is shown). */
  onError?: (err: unknown) => void;
  /** Called once with the explorer's API. */
  onApi?: (api: ExplorerApi) => void;
  /** Hidden states, logit lens, next-token logits, generation: their tabs appear when present. */
  internals?: Internals | null;
  /** The kernel's reruns (ablate, edit, restore) and its `_reruns` state; absent in reports. */
  reruns?: { state: unknown; send: RerunSender } | null;
  /** Activation-patching effects: the Effects tab appears when present. */
  patching?: Patching | null;
  /** Called with the open tab after the user opens one or folds the row. */
  onTab?: (tab: TabName | "none") => void;
  /** Value norms (asked of the kernel, or a report's): the "value" weighting of every view. */
  values?: ValueWeights;
  /** Queries and keys (the Q/K tab) and the information flow (the Flow tab), asked of the kernel. */
  analyses?: AnalysisFetchers;
  extras?: ExplorerExtras;
  /** The measured link to the kernel (default: unmeasured, so slow): what is fetched and when (prefetch.ts). */
  link?: LinkMeter;
}

/** The pattern library's tabs and the user's views, each present when its data came (optional traits). */
export interface ExplorerExtras {
  views?: WireUserView[];
  /** How user views are imported (default: from a Blob URL of their source). */
  loadView?: ModuleLoader;
  census?: CensusData;
  /** Show census input `i` in the views (the host swaps the trace). */
  showInput?: (input: number) => void;
  compare?: WireComparisonPanel;
  training?: WireTrainingPanel;
  /** The training snapshot shown first, and where a new choice goes. */
  step?: number;
  onStep?: (step: number) => void;
}

const MAX_ERRORS = 3;

/**
 * Build the explorer inside `el` and keep it in step with `store`. Returns the cleanup function,
 * which removes everything it added and stops listening.
 */
export function renderExplorer(
  el: HTMLElement,
  rawSource: AttentionSource,
  store: SelectionStore,
  opts: ExplorerOptions = {},
): () => void {
  // Every view reads through the weighting switch (raw or value-weighted blocks): weighted.ts.
  const values = opts.values ?? new ValueWeights();
  const source = new WeightedSource(rawSource, store, values);
  const root = h("div", "txm-root");
  root.tabIndex = 0;
  root.setAttribute("aria-label", "attention explorer (press ? for keyboard shortcuts)");
  const theme: Theme = { dark: opts.dark ?? detectDark(el) };
  root.classList.toggle("txm-dark", theme.dark);
  const errors = h("div", "txm-errors");
  let destroyed = false;
  let requested: string | null = null;
  /** Fetches of what is shown now (top keys) besides `requested`: speculation waits for them. */
  let urgent = 0;
  const link = opts.link ?? new LinkMeter();
  const fetchWant = (w: Want) => (w.pool === 1 ? source.getLayer(w.kind, w.layer) : source.getOverview(w.kind, w.layer, w.pool));
  // Speculation starts only when nothing else waits: the shown layer, its top keys, a zoomed window, a row.
  const prefetch = new Prefetcher(source, link, fetchWant, () => requested === null && urgent === 0 && !source.fetching);
  const failed = new Set<string>();
  const failedAll = new Set<string>();
  const failedTopK = new Set<string>();

  /** Load every layer of `kind` (rollout, or a tab that shows all layers); redraw when they are here. */
  const ensureAll = (kind: string): void => {
    if (ctx.derived.layers(kind) || failedAll.has(kind)) return;
    const [have, total] = ctx.derived.progress(kind);
    setStatus(`loading layers… ${have} of ${total}`);
    ctx.derived.loadLayers(kind).then(
      () => {
        if (!destroyed && store.get().kind === kind) guarded("all");
      },
      (err: unknown) => {
        failedAll.add(kind);
        if (destroyed) return;
        setStatus("some layers unavailable");
        report(err, `tx_magic could not load every ${kind} layer`);
      },
    );
  };

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

  const frames = new FrameCache(source.meta);
  const interventions = new Interventions(source.meta, opts.reruns?.state, opts.reruns?.send ?? null,
    (err) => report(err, "tx_magic could not rerun the model"));
  const ctx: ViewContext = {
    source, store, theme, frames,
    matrices: new MatrixCache(),
    derived: new Derived(source, frames),
    report: (err) => report(err),
    loadAll: (kind) => {
      failedAll.delete(kind);
      ensureAll(kind);
    },
    interventions,
    values,
  };
  const banner = new InterventionBanner(interventions, (err) => report(err));
  const unbusy = interventions.onBusy((busy) => root.classList.toggle("txm-rerunning", busy));
  const help = new Help();
  const exportPicture = (format: ExportFormat, scale = 2) => exportBytes(ctx, format, scale);
  const controls = new Controls(ctx, {
    exportAs: (format) => {
      const name = exportName(ctx, format);
      exportPicture(format).then((bytes) => download(bytes, name, format), (err: unknown) => report(err, "tx_magic could not export the view"));
    },
    toggleHelp: () => help.toggle(),
  });
  const arc = new ArcView(ctx, opts.arc);
  const matrix = new MatrixView(ctx, opts.matrix);
  const views = h("div", "txm-views");
  const placeholder = h("div", "txm-placeholder");
  views.append(arc.element, matrix.element, placeholder);
  const inside = opts.internals;
  const x = opts.extras;
  const panels: [TabName, PanelView | null][] = [
    ["grid", new GridView(ctx)], ["heads", new HeadsView(ctx)], ["layers", new LayersView(ctx)], ["stats", new StatsView(ctx)],
    ["hidden", inside?.hidden ? new HiddenView(ctx, inside) : null],
    ["lens", inside?.lens ? new LensView(ctx, inside) : null],
    ["next", inside?.logits ? new NextTokenView(ctx, inside) : null],
    ["generation", inside?.generation ? new GenerationView(ctx, inside, inside.generation) : null],
    ["image", source.meta.image ? new ImageView(ctx) : null],
    ["effects", opts.patching ? new EffectsView(ctx, opts.patching) : null],
    ["flow", opts.analyses?.flow && offered(source.meta, ANALYSIS_FLOW) ? new FlowView(ctx, opts.analyses) : null],
    ["qk", opts.analyses?.queriesKeys && offered(source.meta, ANALYSIS_QK) ? new QueriesKeysView(ctx, opts.analyses) : null],
    ["census", x?.census ? new CensusView(ctx, x.census, x.showInput ?? (() => {})) : null],
    ["compare", x?.compare ? new CompareView(ctx, x.compare) : null],
    ["training", x?.training ? new TrainingView(ctx, x.training, x.step ?? 0, x.onStep ?? (() => {})) : null],
    ...(x?.views ?? []).map((v, i): [TabName, PanelView] => ["view", new UserView(ctx, v, i, x?.loadView ?? blobLoader)]),
  ];
  const present = panels.filter((p): p is [TabName, PanelView] => p[1] !== null);
  const initialTab = opts.tab === "none" ? -1 : Math.max(0, present.findIndex(([name]) => name === (opts.tab ?? (x?.census ? "census" : x?.training ? "training" : x?.compare ? "compare" : inside?.generation ? "generation" : source.meta.image ? "image" : "grid"))));
  const tabs = new Tabs(present.map(([, panel]) => panel), initialTab, () => {
    opts.onTab?.(present.find(([, panel]) => panel === tabs.active)?.[0] ?? "none");
    guarded("all");
  });
  const setStatus = (text: string) => {
    controls.setStatus(text);
    placeholder.textContent = text;
  };
  const showLink = () => {
    if (!source.live) return;
    controls.setLink(link.describe());
    root.dataset.link = link.describe();
  };
  showLink();
  const unlink = link.onChange(showLink);
  root.append(controls.element, help.element, banner.element, errors, views, tabs.element);
  el.append(root);

  const refresh = (changes: Changes) => {
    if (destroyed) return;
    const s = store.get();
    const fix = corrections(source.meta, s);
    if (Object.keys(fix).length > 0) {
      store.set(fix); // notifies again, and that refresh draws
      return;
    }
    controls.update(s, changes);
    if (s.weighting === "value" && !values.peek(s.kind)) {
      weighByValue(s.kind);
      views.classList.add("txm-stale");
      setStatus(`computing ${s.kind} value norms…`);
      return;
    }
    if (typeof changes !== "string" && (changes.has("kind") || changes.has("layer") || changes.has("weighting"))) failed.clear();
    if (typeof changes !== "string" && changes.has("kind")) failedAll.clear();
    const info = kindInfo(source.meta, s.kind);
    const full = source.peekLayer(s.kind, s.layer);
    const layer = full ?? source.peekOverview(s.kind, s.layer);
    const key = layerKey(s.kind, s.layer);
    // Live: what the link affords (prefetch.ts). A static report without the layer says it is not there.
    const want = source.live || !layer ? wantNow(source, s.kind, s.layer, link.fast || !source.live) : null;
    if (want && !failed.has(key) && requested !== key) {
      // Streamed kinds: the pooled overview is the finest whole layer. Others: the full layer (uint8,
      // 4x smaller than float32) on a fast link or when small, else an overview if none is here.
      requested = key;
      const load = info.streamed ? source.getOverview(s.kind, s.layer) : fetchWant(want);
      load.then(
        () => {
          if (requested === key) requested = null;
          const now = store.get();
          if (!destroyed && layerKey(now.kind, now.layer) === key) guarded("all");
          else prefetch.pump();
        },
        (err: unknown) => {
          if (requested === key) requested = null;
          failed.add(key);
          if (destroyed) return;
          prefetch.pump();
          const now = store.get();
          if (layerKey(now.kind, now.layer) === key && !source.peekOverview(s.kind, s.layer)) setStatus(`layer ${s.layer} unavailable`);
          report(err, `tx_magic could not load ${s.kind} layer ${s.layer}`);
        },
      );
    }
    if (layer && (layer.pool ?? 1) > 1 && !source.peekTopK(s.kind, s.layer) && !failedTopK.has(key)) {
      urgent++;
      source.getTopK(s.kind, s.layer).finally(() => {
        urgent--;
        prefetch.pump();
      }).then(
        () => {
          const now = store.get();
          if (!destroyed && layerKey(now.kind, now.layer) === key) guarded("all");
        },
        () => failedTopK.add(key), // the arcs then say they have no top weights
      );
    }
    if (!layer) {
      views.classList.add("txm-stale");
      setStatus(failed.has(key) ? `layer ${s.layer} unavailable` : `loading layer ${s.layer}…`);
      return;
    }
    const pool = layer.pool ?? 1;
    const loadingFull = requested === key && !info.streamed && want?.pool === 1;
    setStatus(pool > 1 ? `overview: each cell the max over ${pool}×${pool} tokens${loadingFull ? " · loading full layer…" : ""}` : "");
    views.classList.remove("txm-stale");
    if (info.streamed) {
      if (showsRollout(s)) setStatus("rollout needs every full layer: this long input was captured reduced, pick one head or the mean");
    } else if (showsRollout(s) || tabs.needsAllLayers(s)) ensureAll(s.kind);
    const whole = frames.frame(info, layer, s.pair);
    const frame = inside?.generation ? stepFrame(whole, shownTokens(inside, whole.layer.shape[1])) : whole;
    arc.update(s, frame, changes);
    matrix.update(s, frame, changes);
    tabs.update(s, changes);
    if (arc.drawn && matrix.drawn && root.dataset.ready !== "1") root.dataset.ready = "1";
    prefetch.plan(s.kind, s.layer); // after the first view: the neighbours, as the link affords
  };

  /** Fetch a kind's value norms, then redraw; a failure says why in the widget and goes back to raw weights. */
  const weighing = new Set<string>();
  const weighByValue = (kind: string): void => {
    if (weighing.has(kind)) return;
    weighing.add(kind);
    values.load(kind).finally(() => weighing.delete(kind)).then(
      () => {
        if (!destroyed) guarded("all");
      },
      (err: unknown) => {
        if (destroyed) return;
        report(err, "tx_magic could not weigh attention by value");
        if (store.get().weighting === "value") store.set({ weighting: "raw" });
      },
    );
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return; // Ctrl+S, Shift+Enter... stay the host's
    const target = e.target as Element | null;
    const s = store.get();
    const layer = source.peekLayer(s.kind, s.layer) ?? source.peekOverview(s.kind, s.layer);
    const crop = layer ? frames.frame(kindInfo(source.meta, s.kind), layer, s.pair).crop : null;
    const order = crop ? { query: crop.rows, key: crop.cols } : { query: [], key: [] };
    const inForm = Boolean(target?.closest?.("select, input, textarea"));
    if (!inForm && (e.key === "+" || e.key === "=" || e.key === "-")) {
      e.preventDefault();
      e.stopPropagation();
      matrix.zoomStep(e.key !== "-");
      return;
    }
    const result = inForm ? null : keyAction(e.key, s, source.meta, order);
    if (result) {
      e.preventDefault();
      e.stopPropagation(); // JupyterLab's command-mode shortcuts (digits, arrows) must not fire too
      if ("help" in result) help.toggle();
      else store.set(result.set);
    } else if (e.key.length === 1) {
      // Plain characters are notebook commands in JupyterLab's command mode (x cuts the cell):
      // typed inside the widget they stay here.
      e.stopPropagation();
    }
  };
  root.addEventListener("keydown", onKey);
  opts.onApi?.({ exportPicture });

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
    prefetch.stop();
    unlink();
    unsubscribe();
    root.removeEventListener("keydown", onKey);
    resizer?.disconnect();
    themer?.disconnect();
    if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
    controls.destroy();
    unbusy();
    banner.destroy();
    arc.destroy();
    matrix.destroy();
    tabs.destroy();
    root.remove();
  };
}
