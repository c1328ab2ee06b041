import { describe, expect, it, vi } from "vitest";
import { LayerStore, sliceBlock, type LayerData } from "../src/source";
import { decodeMeta, WIRE_VERSION } from "../src/wire";
import { deferred, fakeMeta, randomLayer } from "./helpers";

const meta = fakeMeta({ tokens: ["a", "b", "c"], layers: 3, heads: 2 });
const layer = (l: number) => randomLayer("self", l, 2, 3, 3, null);

describe("LayerStore", () => {
  it("serves eager layers without fetching", async () => {
    const fetch = vi.fn();
    const store = new LayerStore(meta, [layer(0)], fetch);
    expect(store.peekLayer("self", 0)).toBeDefined();
    expect((await store.getLayer("self", 0)).layer).toBe(0);
    expect(fetch).not.toHaveBeenCalled();
  });

  it("fetches a missing layer once, however often it is asked for, then caches it", async () => {
    const pending = deferred<LayerData>();
    const fetch = vi.fn(() => pending.promise);
    const store = new LayerStore(meta, [layer(0)], fetch);
    const a = store.getLayer("self", 2);
    const b = store.getLayer("self", 2);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(store.peekLayer("self", 2)).toBeUndefined();
    pending.resolve(layer(2));
    expect(await a).toBe(await b);
    expect(store.peekLayer("self", 2)).toBe(await a);
    await store.getLayer("self", 2);
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("asks again after a failure", async () => {
    let calls = 0;
    const store = new LayerStore(meta, [], async (_k, l) => {
      calls++;
      if (calls === 1) throw new Error("busy");
      return layer(l);
    });
    await expect(store.getLayer("self", 1)).rejects.toThrow("busy");
    expect((await store.getLayer("self", 1)).layer).toBe(1);
    expect(calls).toBe(2);
  });

  it("rejects unknown kinds, layers out of range, and replies that do not fit", async () => {
    const store = new LayerStore(meta, [], async () => randomLayer("self", 1, 2, 3, 4, null));
    await expect(store.getLayer("cross", 0)).rejects.toThrow(/no cross attention/);
    await expect(store.getLayer("self", 3)).rejects.toThrow(/layers 0\.\.2, not 3/);
    await expect(store.getLayer("self", 1)).rejects.toThrow(/shape 2x3x4/);
    await expect(store.getLayer("self", 2)).rejects.toThrow(/asked for self layer 2, got self layer 1/);
    await expect(new LayerStore(meta).getLayer("self", 0)).rejects.toThrow(/not in this trace's data/);
    expect(() => new LayerStore(meta, [randomLayer("self", 0, 3, 3, 3, null)])).toThrow(/3 heads|2 heads/);
  });

  it("builds from raw wire values", () => {
    const raw = {
      version: WIRE_VERSION, model: "m", warnings: [],
      sequences: { input: { text: ["a", "b"], special: [false, false] } },
      kinds: [{ name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "none" }],
    };
    const data = new Float32Array([0.5, 0.5, 1, 0]);
    const store = LayerStore.fromWire(raw, [{ kind: "self", layer: 0, dtype: "float32", shape: [1, 2, 2], data: new DataView(data.buffer) }]);
    expect(store.size).toBe(1);
    expect(Array.from(store.peekLayer("self", 0)!.data)).toEqual([0.5, 0.5, 1, 0]);
    expect(decodeMeta(raw).kinds[0].name).toBe("self");
  });
});

describe("LayerStore at every level (wire v2)", () => {
  const n = 8;
  const meta8 = fakeMeta({ tokens: Array.from({ length: n }, (_, i) => `t${i}`), layers: 2, heads: 2 });
  const exact = (l: number) => randomLayer("self", l, 2, n, n, null, 5);
  const quantized = (l: number): LayerData => ({ ...exact(l), exact: false, maxError: 0.001 });
  const pooled = (l: number): LayerData => ({ kind: "self", layer: l, shape: [2, 2, 2], data: new Float32Array(8).fill(0.5), pool: 4 });
  const windowOf = (l: number, w: { q0: number; q1: number; k0: number; k1: number }) => {
    const b = sliceBlock(exact(l), w);
    return { ...b, data: b.data.slice() };
  };

  it("asks for whole layers as uint8 at pool 1 and keeps pooled overviews apart", async () => {
    const fetch = vi.fn(async (_k: string, l: number) => quantized(l));
    const store = new LayerStore(meta8, [pooled(0)], fetch);
    expect(store.peekLayer("self", 0)).toBeUndefined();
    expect(store.peekOverview("self", 0)!.pool).toBe(4);
    const got = await store.getLayer("self", 0);
    expect(fetch).toHaveBeenCalledWith("self", 0, { dtype: "uint8", pool: 1 });
    expect(got.exact).toBe(false);
    expect(store.peekLayer("self", 0)).toBe(got);
  });

  it("cuts exact windows out of an exact layer without fetching", async () => {
    const block = vi.fn();
    const store = new LayerStore(meta8, [exact(0)], { block });
    const w = await store.getBlock("self", 0, { q0: 2, q1: 4, k0: 1, k1: 5 });
    expect(w.shape).toEqual([2, 2, 4]);
    expect(w.data[0]).toBe(exact(0).data[2 * n + 1]);
    expect(w.data[8]).toBe(exact(0).data[n * n + 2 * n + 1]); // head 1
    expect(block).not.toHaveBeenCalled();
  });

  it("fetches a zoom window once, caches it, and serves windows inside it from the cache", async () => {
    const pending = deferred<LayerData>();
    const block = vi.fn(() => pending.promise);
    const store = new LayerStore(meta8, [quantized(1)], { block });
    const w = { q0: 0, q1: 4, k0: 0, k1: 8 };
    const a = store.getBlock("self", 1, w), b = store.getBlock("self", 1, w);
    expect(block).toHaveBeenCalledTimes(1);
    expect(block).toHaveBeenCalledWith("self", 1, w);
    pending.resolve(windowOf(1, w));
    expect(await a).toBe(await b);
    const row = store.peekRow("self", 1, 2)!;
    expect(row.shape).toEqual([2, 1, 8]);
    expect(row.data[3]).toBe(exact(1).data[2 * n + 3]);
    await store.getRow("self", 1, 3);
    expect(block).toHaveBeenCalledTimes(1);
  });

  it("keeps cached windows under its byte budget, least recently used dropped first", async () => {
    const block = vi.fn(async (_k: string, l: number, w: { q0: number; q1: number; k0: number; k1: number }) => windowOf(l, w));
    const rowBytes = 2 * n * 4;
    const store = new LayerStore(meta8, [quantized(0)], { block }, rowBytes * 3);
    for (const q of [0, 1, 2]) await store.getRow("self", 0, q);
    expect(store.cachedBlockBytes).toBe(rowBytes * 3);
    store.peekRow("self", 0, 0); // used again: row 1 is now the oldest
    await store.getRow("self", 0, 3);
    expect(store.cachedBlockBytes).toBe(rowBytes * 3);
    expect(store.peekRow("self", 0, 1)).toBeUndefined();
    expect(store.peekRow("self", 0, 0)).toBeDefined();
  });

  it("refuses windows over MAX_BLOCK_CELLS and full layers of streamed kinds, with readable errors", async () => {
    const streamedMeta = decodeMeta({
      version: WIRE_VERSION, model: "m", warnings: [],
      sequences: { input: { text: ["a", "b", "c", "d"] } },
      kinds: [{ name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "none", streamed: true, pool: 2 }],
    });
    const layer = vi.fn();
    const store = new LayerStore(streamedMeta, [], { layer });
    await expect(store.getLayer("self", 0)).rejects.toThrow(/captured reduced/);
    expect(layer).not.toHaveBeenCalled();
    const big = fakeMeta({ tokens: Array.from({ length: 1100 }, (_, i) => `t${i}`), layers: 1, heads: 1 });
    await expect(new LayerStore(big, [], { block: vi.fn() }).getBlock("self", 0, { q0: 0, q1: 1100, k0: 0, k1: 1100 })).rejects.toThrow(/zoom in/);
  });

  it("never replaces an exact layer by a quantized one", () => {
    const store = new LayerStore(meta8, [exact(0)]);
    const kept = store.peekLayer("self", 0);
    store.add(quantized(0));
    expect(store.peekLayer("self", 0)).toBe(kept);
  });
});
