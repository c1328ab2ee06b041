// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import fixture from "./fixtures/image-fixture.json";
import { renderExplorer } from "../src/render";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore, DEFAULT_SELECTION } from "../src/state";
import { decodeImage, decodeMeta, IMAGE_KEYS, WIRE_VERSION } from "../src/wire";
import { fitSize, heatPixels, MAX_ALPHA, patchAt, patchWeights, queryToken } from "../src/views/image";
import { contextOf, testHost } from "./helpers";

const N = fixture.sequences.input.text.length; // [CLS] + 4 x 4 patches

function imageMeta() {
  return decodeMeta({
    version: WIRE_VERSION, model: "tiny-vit", warnings: [], sequences: fixture.sequences,
    kinds: [{ name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "none" }],
    image: fixture.image,
  });
}

/** One layer, one head: row 0 is the fixture's [CLS] row (from Python), the others uniform. */
function clsLayer(): LayerData {
  const data = new Float32Array(N * N).fill(1 / N);
  data.set(fixture.cls_row_layer0_head0, 0);
  return { kind: "self", layer: 0, shape: [1, N, N], data };
}

describe("the image on the wire", () => {
  it("decodes what Python sends: PNG bytes and the patch grid", () => {
    expect(Object.keys(fixture.image).sort()).toEqual([...IMAGE_KEYS].sort());
    const image = imageMeta().image!;
    expect([image.rows, image.cols, image.first, image.width, image.height]).toEqual([4, 4, 1, 32, 32]);
    expect(Array.from(image.png.subarray(0, 4))).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(fixture.sequences.input.text[image.first]).toBe("patch 0,0");
  });

  it("refuses a grid that does not fit the tokens", () => {
    const seqs = decodeMeta({ ...imageMeta(), image: undefined }).sequences;
    expect(() => decodeImage({ ...fixture.image, rows: 5 }, seqs)).toThrow(/do not fit 17 tokens/);
    expect(() => decodeImage({ ...fixture.image, sequence: "source" }, seqs)).toThrow(/unknown sequence/);
    expect(decodeMeta({ ...fixture, version: WIRE_VERSION, model: "m", warnings: [],
      kinds: [{ name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "none" }],
      image: undefined }).image).toBeUndefined();
  });
});

describe("image math", () => {
  it("takes the query's weights on the patches, skipping [CLS]", () => {
    const w = patchWeights(clsLayer().data, N, 0, { rows: 4, cols: 4, first: 1 });
    expect(Array.from(w)).toEqual(fixture.cls_row_layer0_head0.slice(1).map(Math.fround));
    const uniform = patchWeights(clsLayer().data, N, 3, { rows: 4, cols: 4, first: 1 });
    expect(Array.from(uniform).every((x) => Math.abs(x - 1 / N) < 1e-7)).toBe(true);
  });

  it("draws the strongest patch at MAX_ALPHA, the others in proportion, zero and NaN transparent", () => {
    const { pixels, max } = heatPixels(new Float32Array([0.2, 0.1, 0, 0.05]));
    expect(max).toBeCloseTo(0.2);
    expect([pixels[3], pixels[7], pixels[11], pixels[15]]).toEqual([MAX_ALPHA, Math.round(MAX_ALPHA / 2), 0, Math.round(MAX_ALPHA / 4)]);
    const nan = patchWeights(new Float32Array([NaN, -1, 0.5]), 3, 0, { rows: 1, cols: 2, first: 1 });
    expect(Array.from(nan)).toEqual([0, 0.5]);
    expect(heatPixels(new Float32Array(4)).pixels.every((v, i) => i % 4 !== 3 || v === 0)).toBe(true);
  });

  it("finds the patch under the pointer and fits the picture", () => {
    expect(patchAt(0, 0, 320, 320, 4, 4)).toBe(0);
    expect(patchAt(319, 319, 320, 320, 4, 4)).toBe(15);
    expect(patchAt(81, 0, 320, 320, 4, 4)).toBe(1);
    expect(patchAt(0, 81, 320, 320, 4, 4)).toBe(4);
    expect(patchAt(-1, 5, 320, 320, 4, 4)).toBe(-1);
    expect(patchAt(5, 320, 320, 320, 4, 4)).toBe(-1);
    expect(fitSize(64, 32, 360)).toEqual([360, 180]);
  });

  it("uses the focused query token, else [CLS]", () => {
    expect(queryToken(DEFAULT_SELECTION, true, N)).toBe(0);
    expect(queryToken({ ...DEFAULT_SELECTION, hover: 5 }, true, N)).toBe(5);
    expect(queryToken({ ...DEFAULT_SELECTION, pinned: 7, pinnedSide: "key" }, true, N)).toBe(7);
    expect(queryToken({ ...DEFAULT_SELECTION, pinned: 7, pinnedSide: "key" }, false, N)).toBe(0);
    expect(queryToken({ ...DEFAULT_SELECTION, hover: 99 }, true, N)).toBe(0);
  });
});

describe("the image tab in the explorer", () => {
  const dom = testHost();

  it("opens first for an image trace, follows the focus, and a click pins a patch", () => {
    const meta = imageMeta();
    const store = new SelectionStore({ kind: "self", heads: [0] });
    dom.cleanup = renderExplorer(dom.host, new LayerStore(meta, [clsLayer()]), store, { dark: false });
    const tab = dom.host.querySelector<HTMLElement>('.txm-tab[data-tab="image"]')!;
    expect(tab.getAttribute("aria-selected")).toBe("true");
    const panel = dom.host.querySelector<HTMLElement>('.txm-image')!;
    expect(panel.hidden).toBe(false);
    expect(panel.dataset.query).toBe("0");
    expect(panel.textContent).toContain("from [CLS]");
    store.set({ hover: 6, hoverSide: "query" });
    expect(panel.dataset.query).toBe("6");
    expect(panel.textContent).toContain("from patch 1,1");
    store.set({ hover: -1 });
    const canvas = panel.querySelector("canvas")!;
    const ctx = contextOf(canvas);
    ctx.reset();
    canvas.dispatchEvent(new MouseEvent("click", { clientX: 359, clientY: 1, bubbles: true })); // top right: patch 0,3
    expect(store.get().pinned).toBe(4);
    expect(panel.dataset.query).toBe("4");
    const patches = ctx.calls.filter((c) => c.name === "fillRect");
    expect(patches.length).toBe(16); // uniform row: every patch drawn, at the same opacity
    const strokes = ctx.calls.filter((c) => c.name === "strokeRect");
    const outline = strokes[strokes.length - 1].args as number[];
    expect(outline[0]).toBeGreaterThan(260); // the clicked patch (column 3 of 4) is outlined
    canvas.dispatchEvent(new MouseEvent("click", { clientX: 359, clientY: 1, bubbles: true }));
    expect(store.get().pinned).toBe(-1); // clicked again: back to [CLS]
  });

  it("is not there for a text trace", () => {
    const meta = decodeMeta({ ...imageMeta(), image: undefined });
    dom.cleanup = renderExplorer(dom.host, new LayerStore(meta, [clsLayer()]), new SelectionStore({ kind: "self", heads: [0] }), { dark: false });
    expect(dom.host.querySelector('.txm-tab[data-tab="image"]')).toBeNull();
    expect(dom.host.querySelector(".txm-image")).toBeNull();
  });
});
