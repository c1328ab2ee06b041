// @vitest-environment jsdom
import { WIRE_VERSION } from "../src/wire";
import { describe, expect, it, vi } from "vitest";
import { renderExplorer } from "../src/render";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore } from "../src/state";
import { maskColors, weightColor, weightScale } from "../src/colors";
import { contextOf, deferred, fakeMeta, fakeSource, flush, installFakeCanvas, randomLayer, testHost } from "./helpers";

const EVIL = "<img src=x onerror=alert(1)>";
const TOKENS = ["[CLS]", "the", EVIL, "cat", "sat", "[SEP]"];

const dom = testHost();

function mount(opts: { causal?: boolean; eager?: number[]; fetch?: (k: string, l: number) => Promise<LayerData>; warnings?: string[] } = {}) {
  const meta = fakeMeta({ tokens: TOKENS, layers: 4, heads: 3, causal: opts.causal, warnings: opts.warnings });
  const source = fakeSource(meta, opts.eager, opts.fetch);
  const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1, 2], head: -1 });
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  const arc = root.querySelector<HTMLElement>('[data-view="arc"]')!;
  const matrix = root.querySelector<HTMLElement>('[data-view="matrix"]')!;
  const token = (side: "query" | "key", i: number) => arc.querySelector<HTMLElement>(`.txm-token[data-side="${side}"][data-index="${i}"]`)!;
  return { meta, source, store, root, arc, matrix, token };
}

describe("renderExplorer", () => {
  it("builds the root, both views and reports ready", () => {
    const { root, arc, matrix } = mount();
    expect(root).not.toBeNull();
    expect(root.dataset.ready).toBe("1");
    expect(arc.querySelector("canvas")).not.toBeNull();
    expect(matrix.querySelector("canvas")).not.toBeNull();
    expect(matrix.dataset.drawnLayer).toBe("0");
    expect(matrix.dataset.drawnHead).toBe("-1");
    expect(matrix.dataset.focusRow).toBe("-1");
    expect(arc.dataset.focusToken).toBe("-1");
    expect(root.querySelectorAll(".txm-error")).toHaveLength(0);
  });

  it("shows tokens and warnings as text, never as HTML", () => {
    const { root, arc } = mount({ warnings: ["<b>cut</b> to 512 tokens"] });
    expect(root.querySelectorAll("img")).toHaveLength(0);
    expect(root.querySelectorAll("b")).toHaveLength(0);
    const labels = Array.from(arc.querySelectorAll('.txm-token[data-side="query"]')).map((e) => e.textContent);
    expect(labels).toEqual(TOKENS);
    expect(arc.querySelectorAll('.txm-token[data-side="key"]')).toHaveLength(TOKENS.length);
    expect(root.querySelector(".txm-warning")!.textContent).toContain("<b>cut</b> to 512 tokens");
  });

  it("focuses a hovered query token in the state and in both views", () => {
    const { store, arc, matrix, token } = mount();
    token("query", 3).dispatchEvent(new MouseEvent("mouseenter", { bubbles: false }));
    expect(store.get().hover).toBe(3);
    expect(store.get().hoverSide).toBe("query");
    expect(store.token).toBe(3);
    expect(matrix.dataset.focusRow).toBe("3");
    expect(arc.dataset.focusToken).toBe("3");
    expect(token("query", 3).classList.contains("txm-focus")).toBe(true);

    token("query", 4).dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(matrix.dataset.focusRow).toBe("4");
    expect(token("query", 3).classList.contains("txm-focus")).toBe(false);

    token("query", 4).dispatchEvent(new MouseEvent("mouseout", { bubbles: true, relatedTarget: null }));
    expect(store.get().hover).toBe(-1);
    expect(matrix.dataset.focusRow).toBe("-1");
    expect(arc.dataset.focusToken).toBe("-1");
  });

  it("focuses a key token as the key side", () => {
    const { store, arc, token } = mount();
    token("key", 2).dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    expect(store.get()).toMatchObject({ hover: 2, hoverSide: "key" });
    expect(arc.dataset.focusToken).toBe("2");
    expect(arc.dataset.focusSide).toBe("key");
    expect(token("key", 2).classList.contains("txm-focus")).toBe(true);
  });

  it("pins and unpins a token on click", () => {
    const { store, token } = mount();
    token("query", 1).click();
    expect(store.get().pinned).toBe(1);
    token("query", 1).dispatchEvent(new MouseEvent("mouseout", { bubbles: true }));
    expect(store.token).toBe(1);
    token("query", 1).click();
    expect(store.get().pinned).toBe(-1);
  });

  it("changes the layer from the select and the step buttons", () => {
    const { store, root, matrix } = mount();
    const select = root.querySelector<HTMLSelectElement>("select.txm-layer")!;
    expect(select.options).toHaveLength(4);
    select.value = "2";
    select.dispatchEvent(new Event("change"));
    expect(store.get().layer).toBe(2);
    expect(matrix.dataset.drawnLayer).toBe("2");
    root.querySelector<HTMLButtonElement>(".txm-next")!.click();
    expect(store.get().layer).toBe(3);
    expect(root.querySelector<HTMLButtonElement>(".txm-next")!.disabled).toBe(true);
    root.querySelector<HTMLButtonElement>(".txm-prev")!.click();
    expect(store.get().layer).toBe(2);
  });

  it("follows selection changes made elsewhere (Python)", () => {
    const { store, root, matrix } = mount();
    store.set({ layer: 3, head: 1 });
    expect(root.querySelector<HTMLSelectElement>("select.txm-layer")!.value).toBe("3");
    expect(root.querySelector<HTMLSelectElement>("select.txm-matrix-head")!.value).toBe("1");
    expect(matrix.dataset.drawnLayer).toBe("3");
    expect(matrix.dataset.drawnHead).toBe("1");
    store.set({ layer: 99 }); // out of range: corrected, not drawn blank
    expect(store.get().layer).toBe(3);
  });

  it("toggles heads with the chips, solos with shift-click, all/none", () => {
    const { store, root } = mount();
    const chip = (h: number) => root.querySelector<HTMLButtonElement>(`button.txm-head[data-head="${h}"]`)!;
    expect(root.querySelectorAll("button.txm-head")).toHaveLength(3);
    expect(chip(0).getAttribute("aria-pressed")).toBe("true");
    chip(0).click();
    expect(store.get().heads).toEqual([1, 2]);
    expect(chip(0).getAttribute("aria-pressed")).toBe("false");
    chip(0).click();
    expect(store.get().heads).toEqual([0, 1, 2]);
    chip(1).dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: true }));
    expect(store.get().heads).toEqual([1]);
    chip(1).dispatchEvent(new MouseEvent("click", { bubbles: true, altKey: true }));
    expect(store.get().heads).toEqual([0, 1, 2]);
    root.querySelector<HTMLButtonElement>(".txm-heads-none")!.click();
    expect(store.get().heads).toEqual([]);
    root.querySelector<HTMLButtonElement>(".txm-heads-all")!.click();
    expect(store.get().heads).toEqual([0, 1, 2]);
  });

  it("shows a head alone in the matrix from the selector", () => {
    const { store, root, matrix } = mount();
    const select = root.querySelector<HTMLSelectElement>("select.txm-matrix-head")!;
    select.value = "2";
    select.dispatchEvent(new Event("change"));
    expect(store.get().head).toBe(2);
    expect(matrix.dataset.drawnHead).toBe("2");
    expect(root.querySelector(`button.txm-head[data-head="2"]`)!.classList.contains("txm-shown")).toBe(true);
  });

  it("draws only the focused token's arcs, never to masked keys", () => {
    // Weights everywhere, even where the causal mask forbids: the mask alone must hide them.
    const n = TOKENS.length;
    const everywhere: LayerData = { kind: "self", layer: 0, shape: [3, n, n], data: new Float32Array(3 * n * n).fill(1 / n) };
    const source = new LayerStore(fakeMeta({ tokens: TOKENS, layers: 1, heads: 3, causal: true }), [everywhere]);
    const store = new SelectionStore({ kind: "self", heads: [0, 1, 2] });
    dom.cleanup = renderExplorer(dom.host, source, store, { dark: false });
    const arc = dom.host.querySelector<HTMLElement>('[data-view="arc"]')!;
    const ctx = contextOf(arc.querySelector("canvas"));
    const curves = () => ctx.calls.filter((c) => c.name === "bezierCurveTo").map((c) => c.args as number[]);
    const row = (y: number) => Math.floor(y / 20); // row height 20, heads fan out by < 7 px

    ctx.reset();
    arc.querySelector('.txm-token[data-side="query"][data-index="1"]')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    // Query 1 of a causal mask sees keys 0 and 1 only: 2 curves for each of 3 heads.
    expect(curves()).toHaveLength(6);
    for (const c of curves()) expect(row(c[5])).toBeLessThanOrEqual(1);

    ctx.reset();
    arc.querySelector('.txm-token[data-side="key"][data-index="2"]')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    // Key 2 is seen by queries 2..5 only.
    expect(curves()).toHaveLength(3 * (n - 2));
    for (const c of curves()) expect(row(c[5] - 0)).toBe(2);

    ctx.reset();
    store.set({ hover: -1 });
    // The faint overview (nothing focused) draws no masked link either: key row <= query row.
    expect(curves().length).toBeGreaterThan(0);
    for (const c of curves()) expect(row(c[5])).toBeLessThanOrEqual(row(c[1]));
  });

  it("draws the focused token's arcs in the selected heads' colours", () => {
    const { arc, token, store } = mount({ causal: true });
    const ctx = contextOf(arc.querySelector("canvas"));
    ctx.reset();
    token("query", 1).dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    // Query 1 of a causal mask sees keys 0 and 1 only: at most 2 curves for each of 3 heads.
    const curves = ctx.calls.filter((c) => c.name === "bezierCurveTo");
    expect(curves.length).toBeGreaterThan(0);
    expect(curves.length).toBeLessThanOrEqual(6);
    // Every curve ends at key row 0 or 1 (row height 20: centres 10 and 30, fanned out by < 7 px).
    for (const c of curves) expect(c.args[5] as number).toBeLessThan(40);
    // Strokes use the heads' colours.
    expect(ctx.calls.some((c) => c.name === "stroke")).toBe(true);
    store.set({ heads: [] });
    ctx.reset();
    store.set({ hover: 2 });
    expect(ctx.count("bezierCurveTo")).toBe(0);
  });

  it("paints the heat map with the weight ramp and masked cells distinctly", () => {
    const { matrix, source } = mount({ causal: true });
    const ctx = contextOf(matrix.querySelector<HTMLCanvasElement>("canvas.txm-matrix-base"));
    const img = ctx.lastImage!;
    expect(img).not.toBeNull();
    const n = TOKENS.length;
    const pixel = (q: number, k: number) => {
      const x = Math.floor(((k + 0.5) * img.width) / n), y = Math.floor(((q + 0.5) * img.height) / n);
      const i = (y * img.width + x) * 4;
      return [img.data[i], img.data[i + 1], img.data[i + 2]];
    };
    // Cell (0, 5) is masked (causal): one of the hatch greys, not a weight colour.
    const masked = pixel(0, 5);
    expect(maskColors(false).map((c) => c.join())).toContain(masked.join());
    // Cell (0, 0) holds all of query 0's attention (causal): weight 1 -> the ramp's end.
    expect(pixel(0, 0)).toEqual(weightColor(1, false));
    // Cell (3, 1): the mean over heads, through the (square-root) colour scale.
    const layer = source.peekLayer("self", 0)!;
    const mean = [0, 1, 2].reduce((s, h) => s + layer.data[h * n * n + 3 * n + 1], 0) / 3;
    const want = weightColor(weightScale(mean), false);
    for (const [c, v] of pixel(3, 1).entries()) expect(Math.abs(v - want[c])).toBeLessThanOrEqual(2);
  });

  it("hovering the matrix shows the exact weight and focuses the row", () => {
    const { matrix, store, source } = mount();
    const overlay = matrix.querySelector<HTMLCanvasElement>("canvas.txm-matrix-overlay")!;
    const cell = parseFloat(overlay.style.width) / TOKENS.length;
    overlay.dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 4.5 * cell, clientY: 2.5 * cell }));
    expect(store.get().hover).toBe(2);
    expect(matrix.dataset.focusRow).toBe("2");
    const tip = matrix.querySelector<HTMLElement>(".txm-tooltip")!;
    expect(tip.hidden).toBe(false);
    const layer = source.peekLayer("self", 0)!;
    const n = TOKENS.length;
    const mean = [0, 1, 2].reduce((s, h) => s + layer.data[h * n * n + 2 * n + 4], 0) / 3;
    expect(tip.textContent).toContain(`${EVIL} → sat: ${Math.fround(mean).toPrecision(4)}`);
    expect(tip.querySelectorAll("img")).toHaveLength(0);
    overlay.dispatchEvent(new MouseEvent("mouseleave"));
    expect(tip.hidden).toBe(true);
    expect(store.get().hover).toBe(-1);
  });

  it("loads layers that are not here yet, with a visible loading state", async () => {
    const pending = deferred<LayerData>();
    const asked: string[] = [];
    const { store, root, matrix, meta } = mount({
      eager: [0],
      fetch: (k, l) => {
        asked.push(`${k}/${l}`);
        return pending.promise;
      },
    });
    store.set({ layer: 2 });
    store.set({ hover: 1 }); // a second change while loading does not ask again
    expect(asked).toEqual(["self/2"]);
    expect(root.querySelector(".txm-status")!.textContent).toContain("loading layer 2");
    expect(root.querySelector(".txm-views")!.classList.contains("txm-stale")).toBe(true);
    expect(matrix.dataset.drawnLayer).toBe("0");
    pending.resolve(randomLayer("self", 2, 3, meta.sequences.input.text.length, meta.sequences.input.text.length, null));
    await flush();
    expect(matrix.dataset.drawnLayer).toBe("2");
    expect(root.querySelector(".txm-status")!.textContent).toBe("");
    expect(root.querySelector(".txm-views")!.classList.contains("txm-stale")).toBe(false);
  });

  it("shows a fetch failure in an error box and keeps working", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const { store, root } = mount({ eager: [0], fetch: () => Promise.reject(new Error("kernel died")) });
    store.set({ layer: 1 });
    await flush();
    const box = root.querySelector(".txm-error");
    expect(box).not.toBeNull();
    expect(box!.textContent).toContain("kernel died");
    expect(root.querySelector(".txm-status")!.textContent).toContain("unavailable");
    store.set({ layer: 0 });
    expect(root.querySelector(".txm-status")!.textContent).toBe("");
    expect(logged).toHaveBeenCalled();
    logged.mockRestore();
  });

  it("tolerates canvas being unavailable", () => {
    installFakeCanvas(false);
    const { root, token, matrix } = mount();
    expect(root.dataset.ready).toBe("1");
    token("query", 2).dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(matrix.dataset.focusRow).toBe("2");
  });

  it("switches kinds in an encoder-decoder trace", () => {
    const source = new LayerStore(
      {
        version: WIRE_VERSION, model: "t5", warnings: [],
        sequences: {
          source: { text: ["a", "b", "c"], special: [false, false, false], segment: [0, 0, 0], ids: [1, 2, 3] },
          target: { text: ["x", "y"], special: [false, false], segment: [0, 0], ids: [4, 5] },
        },
        kinds: [
          { name: "encoder", layers: 2, heads: 2, queries: "source", keys: "source", mask: "none" },
          { name: "cross", layers: 2, heads: 4, queries: "target", keys: "source", mask: "none" },
        ],
      },
      [randomLayer("encoder", 0, 2, 3, 3, null), randomLayer("encoder", 1, 2, 3, 3, null), randomLayer("cross", 0, 4, 2, 3, null), randomLayer("cross", 1, 4, 2, 3, null)],
    );
    const store = new SelectionStore({ kind: "encoder", heads: [0, 1] });
    dom.cleanup = renderExplorer(dom.host, source, store, { dark: true });
    const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
    expect(root.classList.contains("txm-dark")).toBe(true);
    const kinds = root.querySelectorAll<HTMLButtonElement>("button.txm-kind");
    expect(kinds).toHaveLength(2);
    kinds[1].click();
    expect(store.get()).toMatchObject({ kind: "cross", heads: [0, 1, 2, 3] });
    expect(root.querySelectorAll("button.txm-head")).toHaveLength(4);
    expect(root.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')).toHaveLength(2);
    expect(root.querySelectorAll('[data-view="arc"] .txm-token[data-side="key"]')).toHaveLength(3);
    // Focusing a cross key: no matrix row (queries are other tokens), a column instead.
    root.querySelector<HTMLElement>('.txm-token[data-side="key"][data-index="2"]')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    const matrix = root.querySelector<HTMLElement>('[data-view="matrix"]')!;
    expect(matrix.dataset.focusRow).toBe("-1");
    expect(matrix.dataset.focusCol).toBe("2");
  });

  it("cleans up everything it added", () => {
    const { store } = mount();
    dom.cleanup!();
    dom.cleanup = null;
    expect(dom.host.querySelector(".txm-root")).toBeNull();
    store.set({ layer: 1 }); // no listener left to throw
  });
});
