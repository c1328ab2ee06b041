import { describe, expect, it } from "vitest";
import { palette, paintPooled, poolMatrix } from "../src/thumbnails";
import { gridLayout } from "../src/views/grid";
import { layoutSize, panelAt, panelBox, paintPanels, type Panel } from "../src/views/multiples";
import { seededRandom } from "../src/sampling";

describe("thumbnails", () => {
  it("max-pools to at most size x size, keeping thin patterns", () => {
    const n = 8;
    const eye = new Float32Array(n * n);
    for (let i = 0; i < n; i++) eye[i * n + i] = 1;
    const p = poolMatrix(eye, n, n, 4);
    expect([p.rows, p.cols, p.aspect]).toEqual([4, 4, 1]);
    expect(Array.from(p.data)).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    const small = poolMatrix(Float32Array.from([0.25, 0.75]), 1, 2, 32);
    expect([small.rows, small.cols, small.aspect]).toEqual([1, 2, 0.5]);
  });

  it("marks pooled cells whose every source cell is masked as NaN", () => {
    const m = Float32Array.from([1, 0, 0.5, 0.5]);
    const p = poolMatrix(m, 2, 2, 2, Uint8Array.from([1, 0, 1, 1]));
    expect(p.data[0]).toBe(1);
    expect(p.data[1]).toBeNaN();
    expect(p.data[3]).toBe(0.5);
  });

  it("paints pooled values with the weight ramp and masked cells in the mask colour", () => {
    const colors = palette(false);
    const px = new Uint32Array(4 * 2);
    paintPooled(px, 4, 0, 0, 4, 2, { data: Float32Array.from([0, 1, NaN, 0.25]), rows: 2, cols: 2, aspect: 1 }, colors);
    expect(px[0]).toBe(colors.ramp[0]);
    expect(px[2]).toBe(colors.ramp[255]);
    expect(px[4]).toBe(colors.masked);
    expect(px[6]).toBe(colors.ramp[128]);
  });

  it("lays out layers x heads and finds the panel under a point", () => {
    const tall = gridLayout(30, 9, 1100);
    expect(tall.transposed).toBe(true); // 30 layers run across
    expect([tall.rows, tall.cols]).toEqual([9, 30]);
    const square = gridLayout(6, 12, 900);
    expect(square.transposed).toBe(false);
    const box = panelBox(square, 2, 3);
    expect(panelAt(square, box.x + 1, box.y + 1)).toEqual({ row: 2, col: 3 });
    expect(panelAt(square, box.x - 1, box.y + 1)).toBeNull(); // in the gap
    expect(layoutSize(square).width).toBeLessThanOrEqual(900);
  });
});

/** Pool every head of `layers` x `heads` random n x n matrices and paint the grid; milliseconds. */
function gridBench(layers: number, heads: number, n: number): { pool: number; paint: number } {
  const next = seededRandom(layers * 100 + heads);
  const matrices = Array.from({ length: 8 }, () => Float32Array.from({ length: n * n }, () => next() / n));
  const layout = gridLayout(layers, heads, 1100);
  const { width, height } = layoutSize(layout);
  const px = new Uint32Array(Math.ceil(width) * Math.ceil(height));
  const t0 = performance.now();
  const panels: Panel[] = [];
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const pooled = poolMatrix(matrices[(l + h) % 8], n, n, 32);
      panels.push({ row: layout.transposed ? h : l, col: layout.transposed ? l : h, pooled, key: l * heads + h });
    }
  }
  const t1 = performance.now();
  paintPanels(px, Math.ceil(width), 1, panels, layout, false);
  return { pool: t1 - t0, paint: performance.now() - t1 };
}

describe("grid drawing speed", () => {
  for (const [layers, heads] of [[30, 9], [32, 32]]) {
    it(`pools and paints ${layers} x ${heads} heads at n = 64 well under a second`, () => {
      gridBench(layers, heads, 64); // warm up the JIT
      const { pool, paint } = gridBench(layers, heads, 64);
      console.log(`grid ${layers}x${heads}, n=64: pool ${pool.toFixed(1)} ms, paint ${paint.toFixed(1)} ms`);
      expect(pool + paint).toBeLessThan(500);
    });
  }
});
