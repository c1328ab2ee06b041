import { describe, expect, it } from "vitest";
import {
  shownOfRow, splitStarts, subMatrix, thumbnailOf, tileIndex, tileMask, windowMask, zoomIn, zoomOut,
} from "../src/pooled";
import type { KindInfo } from "../src/wire";
import { sparseVisitor } from "../src/views/arc-weights";

const causal: KindInfo = { name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "causal" };
const none: KindInfo = { ...causal, mask: "none" };

/** The tile mask the slow way: a tile is allowed when any of its cells is. */
function bruteTileMask(q: number, k: number, pool: number): number[] {
  const rows = Math.ceil(q / pool), cols = Math.ceil(k / pool);
  const out = new Array(rows * cols).fill(0);
  for (let i = 0; i < q; i++) for (let j = 0; j <= Math.min(i, k - 1); j++) out[Math.floor(i / pool) * cols + Math.floor(j / pool)] = 1;
  return out;
}

describe("pooled tiles", () => {
  it("map shown cells to tiles, the last one partial", () => {
    expect(Array.from(tileIndex(0, 10, 4))).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
    expect(Array.from(tileIndex(6, 4, 4))).toEqual([1, 1, 2, 2]);
  });

  it("mask a tile only when every cell under it is masked (causal, partial tiles)", () => {
    for (const [q, pool] of [[10, 4], [9, 3], [17, 8], [5, 1]]) {
      expect(Array.from(tileMask(causal, q, q, pool)!)).toEqual(bruteTileMask(q, q, pool));
    }
    expect(tileMask(none, 10, 10, 4)).toBeNull();
  });

  it("mask a window of cells", () => {
    expect(Array.from(windowMask(causal, 8, { q0: 2, q1: 4, k0: 1, k1: 5 })!)).toEqual([1, 1, 0, 0, 1, 1, 1, 0]);
    const explicit: KindInfo = { ...causal, mask: "explicit", mask_data: new Uint8Array([1, 0, 0, 1]) };
    expect(Array.from(windowMask(explicit, 2, { q0: 1, q1: 2, k0: 0, k1: 2 })!)).toEqual([0, 1]);
  });

  it("cut a window out of a matrix", () => {
    const m = Float32Array.from({ length: 12 }, (_, i) => i); // 3 x 4
    expect(Array.from(subMatrix(m, 4, { q0: 1, q1: 3, k0: 2, k1: 4 }))).toEqual([6, 7, 10, 11]);
  });
});

describe("zoom windows", () => {
  it("zoom in around a cell, inside the matrix, and back out to the whole matrix", () => {
    const all = { q0: 0, q1: 1024, k0: 0, k1: 1024 };
    const w = zoomIn(all, 10, 1000, 1024, 1024);
    expect(w).toEqual({ q0: 0, q1: 256, k0: 768, k1: 1024 });
    const again = zoomIn(w, 100, 900, 1024, 1024);
    expect([again.q1 - again.q0, again.k1 - again.k0]).toEqual([64, 64]);
    expect(again.q0).toBeLessThanOrEqual(100);
    expect(again.q1).toBeGreaterThan(100);
    expect(zoomIn({ q0: 0, q1: 20, k0: 0, k1: 20 }, 5, 5, 20, 20)).toEqual({ q0: 0, q1: 16, k0: 0, k1: 16 });
    expect(zoomOut(again, 1024, 1024)).toMatchObject({ q1: expect.any(Number) });
    expect(zoomOut(w, 1024, 1024)).toBeNull();
  });
});

describe("meta thumbnails", () => {
  it("split tiles like numpy.array_split", () => {
    expect(Array.from(splitStarts(10, 4))).toEqual([0, 3, 6, 8, 10]);
    expect(Array.from(splitStarts(64, 32))).toEqual(Array.from({ length: 33 }, (_, i) => 2 * i));
  });

  it("read value / 255 per tile and mark tiles that are wholly masked", () => {
    const info: KindInfo = { ...causal, layers: 2, heads: 2, thumbnails: { size: 2, data: Uint8Array.from({ length: 16 }, (_, i) => i * 17) } };
    const t = thumbnailOf(info, 1, 0, 4, 4)!; // layer 1, head 0: bytes 8..11
    expect(t.rows).toBe(2);
    expect(t.data[0]).toBeCloseTo((8 * 17) / 255, 6);
    expect(Number.isNaN(t.data[1])).toBe(true); // queries 0-1 x keys 2-3: all masked
    expect(t.data[3]).toBeCloseTo((11 * 17) / 255, 6);
    expect(thumbnailOf(none, 0, 0, 4, 4)).toBeNull();
  });
});

describe("exact rows and top-k arcs", () => {
  it("show one head or the mean of heads from an exact row", () => {
    const row = new Float32Array([0.1, 0.9, 0.5, 0.5]); // 2 heads x 2 keys
    expect(shownOfRow(row, [0, 1], 1, 2, 0)).toBeCloseTo(0.5, 6);
    expect(shownOfRow(row, [0, 1], -1, 2, 1)).toBeCloseTo(0.7, 6);
  });

  it("draw a query's top weights, a key's incoming top weights, and prefer the exact row", () => {
    // 1 head, 3 queries, top 2: query 2 attends keys 0 (0.6) and 2 (0.3).
    const topk = { kind: "self", layer: 0, shape: [1, 3, 2] as [number, number, number], index: new Int32Array([0, 0, 0, 1, 0, 2]), data: new Float32Array([1, 0, 0.7, 0.3, 0.6, 0.3]) };
    const got = (visit: ReturnType<typeof sparseVisitor>) => {
      const out: [number, number][] = [];
      visit!(0, (o, w) => out.push([o, Math.round(w * 10) / 10]));
      return out;
    };
    expect(got(sparseVisitor(topk, undefined, 2, "query"))).toEqual([[0, 0.6], [2, 0.3]]);
    expect(got(sparseVisitor(topk, undefined, 0, "key"))).toEqual([[0, 1], [0, 0], [1, 0.7], [2, 0.6]]);
    const row = { kind: "self", layer: 0, shape: [1, 1, 3] as [number, number, number], data: new Float32Array([0.55, 0.15, 0.3]) };
    expect(got(sparseVisitor(topk, row, 2, "query"))).toEqual([[0, 0.6], [1, 0.2], [2, 0.3]].map(([o]) => [o, Math.round(row.data[o] * 10) / 10]));
    expect(sparseVisitor(undefined, undefined, 1, "query")).toBeNull();
  });
});
