import { describe, expect, it } from "vitest";
import { headMatrix, MatrixCache, meanOfHeads, shownMatrix } from "../src/aggregate";
import type { LayerData } from "../src/source";

// 3 heads, 2 queries, 2 keys: head h holds h*10 + cell.
const layer: LayerData = {
  kind: "self", layer: 0, shape: [3, 2, 2],
  data: new Float32Array([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]),
};

describe("aggregate", () => {
  it("views one head without copying", () => {
    const m = headMatrix(layer, 1);
    expect(Array.from(m)).toEqual([10, 11, 12, 13]);
    expect(m.buffer).toBe(layer.data.buffer);
    expect(() => headMatrix(layer, 3)).toThrow(RangeError);
  });

  it("averages the selected heads", () => {
    expect(Array.from(meanOfHeads(layer, [0, 2]))).toEqual([10, 11, 12, 13]);
    expect(Array.from(meanOfHeads(layer, [0, 1, 2]))).toEqual([10, 11, 12, 13]);
    expect(Array.from(meanOfHeads(layer, [1]))).toEqual([10, 11, 12, 13]);
    expect(Array.from(meanOfHeads(layer, [2, 2, 0]))).toEqual([10, 11, 12, 13]);
    expect(Array.from(meanOfHeads(layer, [0, 1]))).toEqual([5, 6, 7, 8]);
  });

  it("ignores heads outside the layer and gives zeros for none", () => {
    expect(Array.from(meanOfHeads(layer, [1, 7, -1]))).toEqual([10, 11, 12, 13]);
    expect(Array.from(meanOfHeads(layer, []))).toEqual([0, 0, 0, 0]);
  });

  it("does not alias the layer for a single selected head", () => {
    const m = meanOfHeads(layer, [0]);
    m[0] = 99;
    expect(layer.data[0]).toBe(0);
  });

  it("keeps rows summing to 1 when heads do", () => {
    const probs: LayerData = { kind: "self", layer: 0, shape: [2, 1, 3], data: new Float32Array([0.2, 0.3, 0.5, 0.6, 0.1, 0.3]) };
    const m = meanOfHeads(probs, [0, 1]);
    expect(m[0] + m[1] + m[2]).toBeCloseTo(1, 6);
    expect(m[0]).toBeCloseTo(0.4, 6);
  });

  it("shows one head or the mean", () => {
    expect(Array.from(shownMatrix(layer, [0, 1], 2))).toEqual([20, 21, 22, 23]);
    expect(Array.from(shownMatrix(layer, [0, 1], -1))).toEqual([5, 6, 7, 8]);
  });

  it("caches per layer and selection", () => {
    const cache = new MatrixCache(2);
    const a = cache.get(layer, [0, 1], -1);
    expect(cache.get(layer, [0, 1], -1)).toBe(a);
    expect(cache.get(layer, [0, 2], -1)).not.toBe(a);
    const other: LayerData = { ...layer, data: new Float32Array(12) };
    expect(Array.from(cache.get(other, [0, 1], -1))).toEqual([0, 0, 0, 0]);
  });
});
