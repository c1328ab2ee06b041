// @vitest-environment jsdom
/**
 * The explorer on a long input captured reduced (a streamed kind): a pooled overview, exact
 * windows when zoomed, exact tooltips, top-k arcs, thumbnails and statistics from the metadata.
 */
import { describe, expect, it, vi } from "vitest";
import { renderExplorer } from "../src/render";
import { LayerStore, sliceBlock, type CellWindow, type LayerData } from "../src/source";
import { SelectionStore } from "../src/state";
import { decodeMeta, WIRE_VERSION, type TopKBlock } from "../src/wire";
import { causalMask, contextOf, flush, randomLayer, testHost } from "./helpers";

const N = 40, P = 4, H = 2, L = 2, T = N / P;

const dom = testHost();

/** Max over each P x P tile of every head. */
function poolLayer(exact: LayerData): LayerData {
  const data = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        const c = (h * T + Math.floor(i / P)) * T + Math.floor(j / P);
        data[c] = Math.max(data[c], exact.data[(h * N + i) * N + j]);
      }
    }
  }
  return { kind: "self", layer: exact.layer, shape: [H, T, T], data, pool: P, exact: false };
}

function topkOf(exact: LayerData, k = 3): TopKBlock {
  const index = new Int32Array(H * N * k), data = new Float32Array(H * N * k);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      const row = Array.from(exact.data.subarray((h * N + i) * N, (h * N + i + 1) * N), (w, j) => [w, j]);
      row.sort((a, b) => b[0] - a[0]);
      for (let r = 0; r < k; r++) {
        index[(h * N + i) * k + r] = row[r][1];
        data[(h * N + i) * k + r] = row[r][0];
      }
    }
  }
  return { kind: "self", layer: exact.layer, shape: [H, N, k], index, data };
}

function mount() {
  const tokens = Array.from({ length: N }, (_, i) => `t${i}`);
  const stats = { entropy: new Uint8Array(new Float32Array([0.5, 1, 1.5, 2]).buffer) };
  const meta = decodeMeta({
    version: WIRE_VERSION, model: "m", warnings: [],
    sequences: { input: { text: tokens } },
    kinds: [{
      name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "causal", streamed: true, pool: P,
      thumbnails: { size: 4, data: new Uint8Array(L * H * 16).fill(128) }, stats, head_types: [["first", ""], ["", "broad"]],
    }],
  });
  const exact = [0, 1].map((l) => randomLayer("self", l, H, N, N, causalMask(N), 9));
  const fetchers = {
    layer: vi.fn(async (_k: string, l: number) => poolLayer(exact[l])),
    block: vi.fn(async (_k: string, l: number, w: CellWindow) => {
      const b = sliceBlock(exact[l], w);
      return { ...b, data: b.data.slice() };
    }),
    topk: vi.fn(async (_k: string, l: number) => topkOf(exact[l])),
  };
  const source = new LayerStore(meta, [poolLayer(exact[0]), topkOf(exact[0])], fetchers);
  const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1], head: 0 });
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  const matrix = root.querySelector<HTMLElement>('[data-view="matrix"]')!;
  const arc = root.querySelector<HTMLElement>('[data-view="arc"]')!;
  const overlay = matrix.querySelector<HTMLCanvasElement>("canvas.txm-matrix-overlay")!;
  const at = (q: number, k: number, rows = N) => {
    const cell = parseFloat(overlay.style.width) / rows;
    return { bubbles: true, clientX: (k + 0.5) * cell, clientY: (q + 0.5) * cell };
  };
  return { root, matrix, arc, overlay, at, store, source, exact, fetchers };
}

describe("a long input captured reduced", () => {
  it("draws the pooled overview as tiles and says how they are pooled", () => {
    const { matrix, fetchers, root } = mount();
    expect(matrix.dataset.pool).toBe(String(P));
    expect(matrix.textContent).toContain(`each cell: max over ${P} × ${P} tokens`);
    expect(root.dataset.ready).toBe("1");
    const img = contextOf(matrix.querySelector<HTMLCanvasElement>("canvas.txm-matrix-base")).lastImage!;
    const pixel = (q: number, k: number) => {
      const i = (Math.floor(((q + 0.5) * img.height) / N) * img.width + Math.floor(((k + 0.5) * img.width) / N)) * 4;
      return [img.data[i], img.data[i + 1], img.data[i + 2]].join();
    };
    // Tokens in one tile share its colour; (5, 2) and (6, 3) are in tile (1, 0).
    expect(pixel(5, 2)).toBe(pixel(6, 3));
    expect(pixel(5, 2)).toBe(pixel(7, 0));
    // A tile above the diagonal is wholly masked: not the colour of an allowed tile.
    expect(pixel(1, 30)).not.toBe(pixel(1, 1));
    expect(fetchers.layer).not.toHaveBeenCalled();
  });

  it("shows the tile value as approximate in the tooltip, then the exact cell", async () => {
    const { matrix, overlay, at, exact, fetchers } = mount();
    overlay.dispatchEvent(new MouseEvent("mousemove", at(9, 4)));
    const value = matrix.querySelector<HTMLElement>(".txm-tooltip-value")!;
    expect(value.textContent!.startsWith("≈ ")).toBe(true);
    expect(value.classList.contains("txm-approx")).toBe(true);
    await flush();
    expect(fetchers.block).toHaveBeenCalledWith("self", 0, { q0: 9, q1: 10, k0: 0, k1: N });
    const want = exact[0].data[9 * N + 4]; // head 0
    expect(value.textContent).toBe(Math.fround(want).toPrecision(4));
    expect(value.classList.contains("txm-approx")).toBe(false);
  });

  it("zooms into a window on double-click and draws its exact cells, fetched once", async () => {
    const { matrix, overlay, at, fetchers } = mount();
    overlay.dispatchEvent(new MouseEvent("dblclick", at(20, 10)));
    expect(matrix.dataset.window).toBe("12,28,2,18");
    await flush();
    expect(fetchers.block).toHaveBeenCalledWith("self", 0, { q0: 12, q1: 28, k0: 2, k1: 18 });
    expect(matrix.dataset.pool).toBe("1");
    expect(matrix.dataset.approx).toBe("0");
    expect(matrix.textContent).toContain("tokens 12–27 × 2–17 of 40 × 40");
    // Hovering inside the window fetches no window again: the exact values are here (only the
    // arcs ask for the hovered query's whole row).
    fetchers.block.mockClear();
    overlay.dispatchEvent(new MouseEvent("mousemove", at(3, 3, 16)));
    expect(matrix.querySelector(".txm-tooltip-value")!.textContent!.startsWith("≈")).toBe(false);
    expect(fetchers.block.mock.calls.map(([, , w]) => w)).toEqual([{ q0: 15, q1: 16, k0: 0, k1: N }]);
    matrix.querySelector<HTMLButtonElement>(".txm-zoom-reset")!.click();
    expect(matrix.dataset.window).toBe(`0,${N},0,${N}`);
    expect(matrix.dataset.pool).toBe(String(P));
  });

  it("draws arcs from the top weights, then the hovered token's exact row", async () => {
    const { arc, store, fetchers, exact } = mount();
    expect(arc.dataset.arcSource).toBe("topk");
    store.set({ hover: 5, hoverSide: "query" }); // in view (jsdom cannot scroll)
    expect(arc.dataset.arcSource).toBe("topk");
    await flush();
    await new Promise((r) => setTimeout(r, 20)); // the redraw waits for the next frame
    expect(fetchers.block).toHaveBeenCalledWith("self", 0, { q0: 5, q1: 6, k0: 0, k1: N });
    expect(arc.dataset.arcSource).toBe("row");
    // One curve per key of the row at or above the threshold, for each of the two heads.
    const ctx = contextOf(arc.querySelector<HTMLCanvasElement>("canvas"));
    const cleared = ctx.calls.map((c) => c.name).lastIndexOf("clearRect");
    const curves = ctx.calls.slice(cleared).filter((c) => c.name === "bezierCurveTo").length;
    let want = 0;
    for (let h = 0; h < H; h++) for (let j = 0; j < N; j++) if (exact[0].data[(h * N + 5) * N + j] >= 0.01) want++;
    expect(want).toBeGreaterThan(0);
    expect(curves).toBe(want);
  });

  it("fetches another layer's overview and top weights, never a full layer", async () => {
    const { store, matrix, fetchers } = mount();
    store.set({ layer: 1 });
    await flush();
    await flush();
    expect(fetchers.layer).toHaveBeenCalledWith("self", 1, { dtype: "uint8", pool: P });
    expect(fetchers.topk).toHaveBeenCalledWith("self", 1);
    expect(matrix.dataset.drawnLayer).toBe("1");
  });

  it("draws the grid from the thumbnails and the statistics from the metadata, fetching nothing", () => {
    const { root, fetchers } = mount();
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="stats"]')!.click();
    const rows = root.querySelectorAll('[data-view="stats"] tbody tr');
    expect(rows).toHaveLength(L * H);
    expect(root.querySelector('[data-view="stats"]')!.textContent).toContain("1.500");
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="grid"]')!.click();
    expect(root.querySelector('[data-view="grid"] canvas')).not.toBeNull();
    expect(fetchers.layer).not.toHaveBeenCalled();
    expect(root.querySelectorAll(".txm-error")).toHaveLength(0);
  });

  it("draws the layers tab from the thumbnails, fetching nothing and showing no error", async () => {
    const { root, fetchers } = mount();
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="layers"]')!.click();
    await flush();
    const view = root.querySelector('[data-view="layers"]')!;
    expect(view.textContent).toContain("Head 0 through every layer");
    expect(view.textContent).toContain("thumbnail");
    expect(view.querySelector("canvas")).not.toBeNull();
    expect(fetchers.layer).not.toHaveBeenCalled();
    expect(root.querySelectorAll(".txm-error")).toHaveLength(0);
  });

  it("draws every head of the layer from its pooled overview", () => {
    const { root, fetchers } = mount();
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="heads"]')!.click();
    expect(root.querySelector('[data-view="heads"]')!.textContent).toContain("Every head of layer 0");
    expect(fetchers.layer).not.toHaveBeenCalled();
  });
});

describe("zoom by keyboard", () => {
  it("zooms in around the focused token with + and back out with -", () => {
    const { root, matrix, store } = mount();
    store.set({ pinned: 20, pinnedSide: "query" });
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "+", bubbles: true }));
    expect(matrix.dataset.window).toBe("12,28,12,28");
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "-", bubbles: true }));
    expect(matrix.dataset.window).toBe(`0,${N},0,${N}`);
  });
});

describe("a long input that is not streamed", () => {
  it("draws the eager overview at once, then the uint8 layer fetched in the background; tooltips fetch exact values", async () => {
    const tokens = Array.from({ length: N }, (_, i) => `t${i}`);
    const meta = decodeMeta({
      version: WIRE_VERSION, model: "m", warnings: [], sequences: { input: { text: tokens } },
      kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "causal", streamed: false, pool: 1 }],
    });
    const exact = [0, 1].map((l) => randomLayer("self", l, H, N, N, causalMask(N), 4));
    const quantized = (l: number): LayerData => ({ ...exact[l], data: exact[l].data.map((v) => Math.round(v * 100) / 100), exact: false, maxError: 0.002 });
    const fetchers = {
      layer: vi.fn(async (_k: string, l: number) => quantized(l)),
      block: vi.fn(async (_k: string, l: number, w: CellWindow) => sliceBlock(exact[l], w)),
      topk: vi.fn(async (_k: string, l: number) => topkOf(exact[l])),
    };
    const source = new LayerStore(meta, [poolLayer(exact[0])], fetchers);
    const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1], head: 1 });
    dom.cleanup = renderExplorer(dom.host, source, store, { dark: false });
    const matrix = dom.host.querySelector<HTMLElement>('[data-view="matrix"]')!;
    expect(matrix.dataset.pool).toBe(String(P));
    expect(fetchers.layer).toHaveBeenCalledWith("self", 0, { dtype: "uint8", pool: 1 });
    await flush();
    expect(matrix.dataset.pool).toBe("1");
    expect(matrix.dataset.approx).toBe("1");
    expect(matrix.textContent).toContain("values within ±0.002");
    const overlay = matrix.querySelector<HTMLCanvasElement>("canvas.txm-matrix-overlay")!;
    const cell = parseFloat(overlay.style.width) / N;
    overlay.dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 3.5 * cell, clientY: 30.5 * cell }));
    const value = matrix.querySelector<HTMLElement>(".txm-tooltip-value")!;
    expect(value.textContent!.startsWith("≈ ")).toBe(true);
    await flush();
    expect(value.textContent).toBe(Math.fround(exact[0].data[(1 * N + 30) * N + 3]).toPrecision(4));
  });
});

describe("a static report of a long input (no kernel)", () => {
  it("keeps drawing its inlined overview without asking for the full layer or showing an error", async () => {
    const tokens = Array.from({ length: N }, (_, i) => `t${i}`);
    const meta = decodeMeta({
      version: WIRE_VERSION, model: "m", warnings: [], sequences: { input: { text: tokens } },
      kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "causal", streamed: false, pool: 1 }],
    });
    const exact = randomLayer("self", 0, H, N, N, causalMask(N), 5);
    const source = new LayerStore(meta, [poolLayer(exact)]);
    expect(source.live).toBe(false);
    dom.cleanup = renderExplorer(dom.host, source, new SelectionStore({ kind: "self", layer: 0, heads: [0, 1], head: 0 }), { dark: false });
    await flush();
    const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
    expect(root.querySelector('[data-view="matrix"]')!.getAttribute("data-pool")).toBe(String(P));
    expect(root.querySelector(".txm-errors")!.childElementCount).toBe(0);
    expect(root.textContent).not.toContain("loading full layer");
    expect(root.dataset.ready).toBe("1");
  });
});
