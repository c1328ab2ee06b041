// @vitest-environment jsdom
import { describe, expect, it, vi } from "vitest";
import { renderExplorer, type ExplorerApi, type ExplorerOptions } from "../src/render";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore, type Selection } from "../src/state";
import { gridLayout } from "../src/views/grid";
import { panelBox, stripLayout } from "../src/views/multiples";
import { contextOf, deferred, fakeMeta, fakeSource, flush, randomLayer, testHost } from "./helpers";

const TOKENS = ["[CLS]", "the", "cat", "[SEP]", "a", "dog", "[SEP]"];
const SEGMENTS = [0, 0, 0, 0, 1, 1, 1];
const L = 4, H = 3;

const dom = testHost(() => vi.restoreAllMocks());

function mount(opts: {
  segments?: number[]; eager?: number[]; fetch?: (k: string, l: number) => Promise<LayerData>;
  initial?: Partial<Selection>; options?: ExplorerOptions;
} = {}) {
  const meta = fakeMeta({ tokens: TOKENS, layers: L, heads: H, segments: opts.segments });
  const source = fakeSource(meta, opts.eager, opts.fetch);
  const store = new SelectionStore({ kind: "self", heads: [0, 1, 2], ...opts.initial });
  let api: ExplorerApi | null = null;
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, onApi: (a) => (api = a), ...opts.options });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  const q = <T extends Element = HTMLElement>(sel: string) => root.querySelector<T>(sel)!;
  return { meta, source, store, root, q, api: () => api! };
}

/** Click (or hover) the multiples panel at (row, col) of `layout` inside `view`. */
function panelEvent(view: HTMLElement, layout: Parameters<typeof panelBox>[0], row: number, col: number, type = "click") {
  const { x, y } = panelBox(layout, row, col);
  const overlay = view.querySelector<HTMLCanvasElement>(".txm-multiples-overlay")!;
  overlay.dispatchEvent(new MouseEvent(type, { bubbles: true, clientX: x + 2, clientY: y + 2 }));
}

function openTab(root: HTMLElement, name: string) {
  root.querySelector<HTMLButtonElement>(`.txm-tab[data-tab="${name}"]`)!.click();
}

describe("overview grid", () => {
  it("draws every layer x head on one canvas and selects a layer and head on click", () => {
    const { store, q } = mount();
    const grid = q('[data-view="grid"]');
    expect(grid.hidden).toBe(false);
    const base = grid.querySelector<HTMLCanvasElement>(".txm-multiples-base")!;
    expect(contextOf(base).count("putImageData")).toBe(1);
    panelEvent(grid, gridLayout(L, H, 640), 2, 1);
    expect(store.get()).toMatchObject({ layer: 2, head: 1 });
    expect(q('[data-view="matrix"]').dataset.drawnLayer).toBe("2");
    expect(q('[data-view="matrix"]').dataset.drawnHead).toBe("1");
    expect(grid.dataset.selected).toBe("2,1");
  });

  it("previews a head on hover with its statistics", () => {
    const { q } = mount();
    const grid = q('[data-view="grid"]');
    panelEvent(grid, gridLayout(L, H, 640), 1, 2, "mousemove");
    const preview = grid.querySelector<HTMLElement>(".txm-preview")!;
    expect(preview.hidden).toBe(false);
    expect(preview.textContent).toContain("layer 1 · head 2");
    expect(preview.textContent).toMatch(/entropy \d/);
    grid.querySelector(".txm-multiples-overlay")!.dispatchEvent(new MouseEvent("mouseleave"));
    expect(preview.hidden).toBe(true);
  });

  it("does not fetch layers Python left out until asked", async () => {
    const asked: string[] = [];
    const { q, root } = mount({ eager: [0], fetch: async (k, l) => {
      asked.push(`${k}/${l}`);
      return randomLayer(k, l, H, TOKENS.length, TOKENS.length, null);
    } });
    expect(asked).toEqual([]);
    const button = q<HTMLButtonElement>('[data-view="grid"] .txm-load-all');
    expect(button.closest(".txm-missing")!.textContent).toContain("1 of 4 layers here");
    button.click();
    await flush();
    expect(asked.sort()).toEqual(["self/1", "self/2", "self/3"]);
    expect(root.querySelector('[data-view="grid"] .txm-load-all')).toBeNull();
  });
});

describe("head comparison and layer evolution", () => {
  it("shows every head of the layer; a click shows it alone, a second click goes back", () => {
    const { store, q, root } = mount({ initial: { layer: 1 } });
    openTab(root, "heads");
    const heads = q('[data-view="heads"]');
    expect(heads.hidden).toBe(false);
    expect(q('[data-view="grid"]').hidden).toBe(true);
    expect(heads.textContent).toContain("Every head of layer 1");
    const layout = stripLayout(H, 640);
    panelEvent(heads, layout, 0, 2);
    expect(store.get().head).toBe(2);
    panelEvent(heads, layout, 0, 2);
    expect(store.get().head).toBe(-1);
  });

  it("shows one head through every layer, loading them when opened; a click selects the layer", async () => {
    const pending = deferred<LayerData>();
    const { store, q, root } = mount({ eager: [0, 1, 2], fetch: () => pending.promise, initial: { head: 1 } });
    openTab(root, "layers");
    const layers = q('[data-view="layers"]');
    expect(layers.textContent).toContain("Head 1 through every layer");
    expect(root.querySelector(".txm-status")!.textContent).toContain("loading layers… 3 of 4");
    pending.resolve(randomLayer("self", 3, H, TOKENS.length, TOKENS.length, null));
    await flush();
    expect(root.querySelector(".txm-status")!.textContent).toBe("");
    panelEvent(layers, stripLayout(L, 640, 56, 132), 0, 3);
    expect(store.get().layer).toBe(3);
  });

  it("folds the tab row when the open tab is clicked", () => {
    const { root } = mount();
    openTab(root, "grid");
    expect(root.querySelector<HTMLElement>(".txm-tab-body")!.hidden).toBe(true);
  });
});

describe("statistics panel", () => {
  it("lists every head, sorts by a column and selects a head from a row", () => {
    const { store, q, root } = mount();
    openTab(root, "stats");
    const stats = q('[data-view="stats"]');
    const rows = () => Array.from(stats.querySelectorAll<HTMLTableRowElement>("tbody tr"));
    expect(rows()).toHaveLength(L * H);
    const entropy = stats.querySelector<HTMLElement>('th[data-column="entropy"]')!;
    entropy.click();
    expect(entropy.getAttribute("aria-sort")).toBe("descending");
    const values = rows().map((r) => Number(r.children[3].textContent));
    expect(values).toEqual([...values].sort((a, b) => b - a));
    rows()[0].click();
    const [layer, head] = [Number(rows()[0].children[0].textContent), Number(rows()[0].children[1].textContent)];
    expect(store.get()).toMatchObject({ layer, head });
    expect(rows()[0].classList.contains("txm-selected")).toBe(true);
  });
});

describe("toolbar", () => {
  it("offers the pair filter only for sentence pairs, and crops both views", () => {
    const single = mount();
    expect(single.q(".txm-pairs").hidden).toBe(true);
    dom.cleanup?.();
    const { store, q } = mount({ segments: SEGMENTS });
    expect(q(".txm-pairs").hidden).toBe(false);
    q<HTMLButtonElement>('.txm-pair[data-pair="AB"]').click();
    expect(store.get().pair).toBe("AB");
    const queries = Array.from(q('[data-view="arc"]').querySelectorAll<HTMLElement>('.txm-token[data-side="query"]'));
    const keys = Array.from(q('[data-view="arc"]').querySelectorAll<HTMLElement>('.txm-token[data-side="key"]'));
    expect(queries.map((t) => t.dataset.index)).toEqual(["0", "1", "2", "3"]);
    expect(keys.map((t) => t.textContent)).toEqual(["a", "dog", "[SEP]"]);
    expect(q('[data-view="matrix"]').dataset.shape).toBe("4x3");
    keys[1].dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(store.get()).toMatchObject({ hover: 5, hoverSide: "key" });
    expect(q('[data-view="matrix"]').dataset.focusCol).toBe("5");
  });

  it("shows the mask itself with the mask toggle", () => {
    const { store, q } = mount();
    q<HTMLButtonElement>(".txm-mask-toggle").click();
    expect(store.get().showMask).toBe(true);
    const matrix = q('[data-view="matrix"]');
    expect(matrix.dataset.mode).toBe("mask");
    expect(matrix.querySelector(".txm-view-title")!.textContent).toBe("no mask");
    expect(matrix.querySelector(".txm-legend")!.textContent).toContain("allowed");
  });

  it("switches the matrix to the rollout, loading every layer first", async () => {
    const pending = deferred<LayerData>();
    const { store, q, root } = mount({ eager: [0, 1, 2], fetch: () => pending.promise, options: { tab: "none" } });
    const select = q<HTMLSelectElement>("select.txm-matrix-head");
    select.value = "rollout";
    select.dispatchEvent(new Event("change"));
    expect(store.get()).toMatchObject({ head: -1, aggregate: "rollout" });
    expect(root.querySelector(".txm-status")!.textContent).toContain("loading layers");
    pending.resolve(randomLayer("self", 3, H, TOKENS.length, TOKENS.length, null));
    await flush();
    const matrix = q('[data-view="matrix"]');
    expect(matrix.dataset.drawnAggregate).toBe("rollout");
    expect(matrix.querySelector(".txm-view-title")!.textContent).toContain("rollout through layer 0");
  });

  it("exports the views as an SVG download from the Export menu", async () => {
    const blobs: Blob[] = [];
    URL.createObjectURL = vi.fn((b: Blob) => {
      blobs.push(b);
      return "blob:x";
    }) as typeof URL.createObjectURL;
    URL.revokeObjectURL = vi.fn();
    const clicked = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    const { q } = mount();
    q<HTMLButtonElement>(".txm-export").click();
    expect(q(".txm-menu").hidden).toBe(false);
    q<HTMLButtonElement>('.txm-menu-item[data-format="svg"]').click();
    await flush();
    expect(clicked).toHaveBeenCalled();
    expect(blobs[0].type).toBe("image/svg+xml");
    const text = await new Promise<string>((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.readAsText(blobs[0]);
    });
    expect(text).toMatch(/^<svg/);
  });

  it("gives its host an export API", async () => {
    const { api } = mount({ initial: { pinned: 2 } });
    const bytes = await api().exportPicture("svg");
    expect(new TextDecoder().decode(bytes)).toContain("fake/model");
  });
});

describe("keyboard", () => {
  const key = (target: Element, k: string) => {
    const e = new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true });
    target.dispatchEvent(e);
    return e;
  };

  it("is focusable and moves token, layer and head without the mouse", () => {
    const { store, root, q } = mount();
    expect(root.tabIndex).toBe(0);
    const outside = vi.fn();
    dom.host.addEventListener("keydown", outside);
    expect(key(root, "ArrowDown").defaultPrevented).toBe(true);
    expect(store.get()).toMatchObject({ pinned: 0, pinnedSide: "query" });
    key(root, "ArrowDown");
    expect(q('[data-view="matrix"]').dataset.focusRow).toBe("1");
    key(root, "PageDown");
    key(root, "]");
    expect(store.get().layer).toBe(2);
    key(root, "2");
    expect(store.get().head).toBe(2);
    key(root, "h");
    expect(store.get().head).toBe(1);
    key(root, "Escape");
    expect(store.get().pinned).toBe(-1);
    key(root, "x");
    expect(outside).not.toHaveBeenCalled(); // JupyterLab's command-mode shortcuts never see them
    key(root, "Enter");
    expect(outside).toHaveBeenCalledTimes(1); // Shift+Enter and the like stay JupyterLab's
  });

  it("leaves keys in form controls alone and toggles the help", () => {
    const { store, root, q } = mount();
    key(q("select.txm-layer"), "ArrowDown");
    expect(store.get().pinned).toBe(-1);
    const help = q(".txm-help");
    expect(help.hidden).toBe(true);
    key(root, "?");
    expect(help.hidden).toBe(false);
    expect(help.textContent).toContain("PageUp");
    q<HTMLButtonElement>(".txm-help-button").click();
    expect(help.hidden).toBe(true);
  });
});

describe("right-to-left and other scripts", () => {
  it("labels tokens with dir=auto, as text", () => {
    const meta = fakeMeta({ tokens: ["שלום", "مرحبا", "猫", "😀", "<b>x</b>"], layers: 1, heads: 1 });
    const store = new SelectionStore({ kind: "self", heads: [0] });
    dom.cleanup = renderExplorer(dom.host, new LayerStore(meta, [randomLayer("self", 0, 1, 5, 5, null)]), store, { dark: false });
    const tokens = Array.from(dom.host.querySelectorAll<HTMLElement>(".txm-token"));
    expect(tokens.every((t) => t.dir === "auto")).toBe(true);
    expect(tokens.map((t) => t.textContent).slice(0, 5)).toEqual(["שלום", "مرحبا", "猫", "😀", "<b>x</b>"]);
    expect(dom.host.querySelectorAll("b")).toHaveLength(0);
    expect(Array.from(dom.host.querySelectorAll<HTMLElement>(".txm-axis-label")).every((t) => t.dir === "auto")).toBe(true);
  });
});
