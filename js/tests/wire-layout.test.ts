import { describe, expect, it } from "vitest";
import { decodeBlock, LAYOUT_DENSE, LAYOUT_LOWER, lowerCells } from "../src/wire";

/** Causal softmax rows (zeros above the diagonal) of a seeded generator, (heads * n, n). */
function causalRows(heads: number, n: number, seed: number): Float32Array {
  const out = new Float32Array(heads * n * n);
  let x = seed;
  for (let r = 0; r < heads * n; r++) {
    const q = r % n;
    let sum = 0;
    for (let c = 0; c <= q; c++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      out[r * n + c] = Math.exp((x / 2147483648) * 8);
      sum += out[r * n + c];
    }
    for (let c = 0; c <= q; c++) out[r * n + c] /= sum;
  }
  return out;
}

/** byte = round(value / row max * 255) for every cell (dense), and the row maxima. */
function quantize(values: Float32Array, rows: number, cols: number): { bytes: Uint8Array; scale: Float32Array } {
  const bytes = new Uint8Array(rows * cols), scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) scale[r] = Math.max(scale[r], values[r * cols + c]);
    for (let c = 0; c < cols; c++) bytes[r * cols + c] = scale[r] > 0 ? Math.round((values[r * cols + c] / scale[r]) * 255) : 0;
  }
  return { bytes, scale };
}

/** Row r's first r + 1 entries of each head's n x n matrix, rows one after another. */
function lowerOf<T extends Uint8Array | Float32Array>(dense: T, heads: number, n: number, make: (size: number) => T): T {
  const out = make(heads * lowerCells(n));
  let at = 0;
  for (let r = 0; r < heads * n; r++) for (let c = 0; c <= r % n; c++) out[at++] = dense[r * n + c];
  return out;
}

const header = (dtype: "uint8" | "float32", shape: number[], layout: string) =>
  ({ kind: "self", layer: 2, dtype, shape, pool: 1, q0: 0, k0: 0, layout });

describe("the lower layout", () => {
  for (const [heads, n] of [[12, 33], [9, 20], [1, 1], [2, 2]]) {
    it(`decodes uint8 to the dense block's values, ${heads} heads x ${n} tokens`, () => {
      const exact = causalRows(heads, n, 11);
      const { bytes, scale } = quantize(exact, heads * n, n);
      const scaleBytes = new Uint8Array(scale.buffer);
      const dense = decodeBlock({ ...header("uint8", [heads, n, n], LAYOUT_DENSE), data: bytes, scale: scaleBytes });
      const packed = lowerOf(bytes, heads, n, (size) => new Uint8Array(size));
      expect(packed.length).toBe((heads * n * (n + 1)) / 2);
      const lower = decodeBlock(header("uint8", [heads, n, n], LAYOUT_LOWER), [new DataView(packed.buffer), new DataView(scale.buffer)]);
      expect(lower.data).toEqual(dense.data);
      expect(lower.maxError).toBe(dense.maxError);
      expect(lower.exact).toBe(false);
      for (let i = 0; i < exact.length; i++) {
        const r = Math.floor(i / n);
        expect(Math.abs(lower.data[i] - exact[i])).toBeLessThanOrEqual(scale[r] / 510 + 1e-7);
        if (i % n > r % n) expect(lower.data[i]).toBe(0);
      }
    });
  }

  it("decodes float32 bit for bit, zeros above the diagonal", () => {
    const heads = 3, n = 17;
    const exact = causalRows(heads, n, 5);
    const packed = lowerOf(exact, heads, n, (size) => new Float32Array(size));
    const block = decodeBlock({ ...header("float32", [heads, n, n], LAYOUT_LOWER), data: new Uint8Array(packed.buffer) });
    expect(block.exact).toBe(true);
    expect(block.data).toEqual(exact);
  });

  it("refuses a wrong byte count, a non-square block and an unknown layout", () => {
    const scale = new Uint8Array(new Float32Array(4).buffer);
    expect(() => decodeBlock({ ...header("uint8", [1, 4, 4], LAYOUT_LOWER), data: new Uint8Array(16), scale })).toThrow(/\(lower\) needs 10/);
    expect(() => decodeBlock({ ...header("uint8", [1, 4, 3], LAYOUT_LOWER), data: new Uint8Array(9), scale })).toThrow(/must be square/);
    expect(() => decodeBlock({ ...header("uint8", [1, 4, 4], "upper"), data: new Uint8Array(10), scale })).toThrow(/unknown layout/);
  });
});
