import { describe, expect, it, vi } from "vitest";
import { LayerStore, type LayerData } from "../src/source";
import { decodeMeta } from "../src/wire";
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
      version: 1, model: "m", warnings: [],
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
