import { describe, expect, it } from "vitest";
import {
  decodeBlock, decodeMeta, decodeTopK, dequantize, isTopK, quantizationError, WIRE_VERSION,
} from "../src/wire";

/** Quantize like the Python encoder: scale = the row's max, byte = round(value / scale * 255). */
function quantize(values: Float32Array, rows: number, cols: number): { bytes: Uint8Array; scale: Float32Array } {
  const bytes = new Uint8Array(rows * cols), scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, values[r * cols + c]);
    scale[r] = max;
    for (let c = 0; c < cols; c++) bytes[r * cols + c] = max > 0 ? Math.round((values[r * cols + c] / max) * 255) : 0;
  }
  return { bytes, scale };
}

function softmaxRows(rows: number, cols: number, seed: number): Float32Array {
  const out = new Float32Array(rows * cols);
  let x = seed;
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      out[r * cols + c] = Math.exp((x / 2147483648) * 6);
      sum += out[r * cols + c];
    }
    for (let c = 0; c < cols; c++) out[r * cols + c] /= sum;
  }
  return out;
}

describe("uint8 blocks", () => {
  it("dequantize within scale / 510 of the exact values, and say so", () => {
    const H = 2, R = 16, C = 40;
    const exact = softmaxRows(H * R, C, 7);
    const { bytes, scale } = quantize(exact, H * R, C);
    const block = decodeBlock({ kind: "self", layer: 0, dtype: "uint8", shape: [H, R, C], pool: 1, q0: 0, k0: 0, data: bytes, scale: new Uint8Array(scale.buffer) });
    expect(block.exact).toBe(false);
    expect(block.maxError).toBeCloseTo(quantizationError(scale), 9);
    let worst = 0;
    for (let i = 0; i < exact.length; i++) {
      const row = Math.floor(i / C);
      const err = Math.abs(block.data[i] - exact[i]);
      expect(err).toBeLessThanOrEqual(scale[row] / 510 + 1e-7);
      worst = Math.max(worst, err);
    }
    expect(worst).toBeGreaterThan(0); // it really is quantized
    expect(block.maxError!).toBeLessThanOrEqual(1 / 510);
  });

  it("takes data and scale from a reply's buffers", () => {
    const scale = new Float32Array([0.5, 1]);
    const block = decodeBlock({ kind: "self", layer: 3, dtype: "uint8", shape: [1, 2, 2], pool: 1, q0: 0, k0: 0 },
      [new DataView(new Uint8Array([255, 0, 51, 255]).buffer), new DataView(scale.buffer)]);
    expect(Array.from(block.data)).toEqual([0.5, 0, 0.2, 1].map(Math.fround));
    expect(dequantize(new Uint8Array([255]), new Float32Array([0.25]), 1, 1, 1)[0]).toBe(0.25);
  });

  it("refuses a missing scale or a wrong scale length", () => {
    const base = { kind: "self", layer: 0, dtype: "uint8", shape: [1, 2, 2], data: new Uint8Array(4) };
    expect(() => decodeBlock(base)).toThrow(/without scale/);
    expect(() => decodeBlock({ ...base, scale: new Uint8Array(new Float32Array(3).buffer) })).toThrow(/needs 4 and 2/);
  });
});

describe("pooled and windowed blocks", () => {
  it("keep their pool and first cell", () => {
    const pooled = decodeBlock({ kind: "self", layer: 1, dtype: "float32", shape: [1, 2, 2], pool: 4, q0: 0, k0: 0, data: new Uint8Array(new Float32Array([1, 0, 0.5, 0.25]).buffer) });
    expect(pooled.pool).toBe(4);
    expect(pooled.exact).toBe(true);
    const window = decodeBlock({ kind: "self", layer: 1, dtype: "float32", shape: [1, 1, 2], pool: 1, q0: 5, k0: 2, data: new Uint8Array(new Float32Array([0.1, 0.9]).buffer) });
    expect([window.q0, window.k0, window.pool]).toEqual([5, 2, 1]);
  });

  it("read v1 blocks (no pool, q0, k0) as whole exact layers", () => {
    const b = decodeBlock({ kind: "self", layer: 0, dtype: "float32", shape: [1, 1, 1], data: new Uint8Array(new Float32Array([1]).buffer) });
    expect([b.pool, b.q0, b.k0, b.exact]).toEqual([1, 0, 0, true]);
  });
});

describe("top-k blocks", () => {
  it("decode index (int32) and weights, inline or from buffers", () => {
    const index = new Int32Array([2, 0, 1, 2]), data = new Float32Array([0.7, 0.3, 0.6, 0.4]);
    const raw = { kind: "self", layer: 0, dtype: "topk", shape: [1, 2, 2] };
    expect(isTopK(raw)).toBe(true);
    const a = decodeTopK({ ...raw, index: new Uint8Array(index.buffer), data: new Uint8Array(data.buffer) });
    const b = decodeTopK(raw, [new DataView(index.buffer), new DataView(data.buffer)]);
    expect(Array.from(a.index)).toEqual([2, 0, 1, 2]);
    expect(Array.from(b.data)).toEqual(Array.from(data));
    expect(() => decodeTopK({ ...raw, shape: [1, 3, 2], index: new Uint8Array(index.buffer), data: new Uint8Array(data.buffer) })).toThrow(/needs 6/);
  });
});

describe("v2 kinds", () => {
  const base = {
    version: WIRE_VERSION, model: "m", warnings: [],
    sequences: { input: { text: ["a", "b", "c"] } },
  };

  it("read streamed, pool, thumbnails, stats and head types", () => {
    const meta = decodeMeta({
      ...base,
      kinds: [{
        name: "self", layers: 2, heads: 1, queries: "input", keys: "input", mask: "causal", streamed: true, pool: 4,
        thumbnails: { size: 2, data: new Uint8Array(8).fill(255) },
        stats: { entropy: new Uint8Array(new Float32Array([0.5, 1.5]).buffer) },
        head_types: [["first"], [""]],
      }],
    });
    const kind = meta.kinds[0];
    expect([kind.streamed, kind.pool, kind.thumbnails!.size]).toEqual([true, 4, 2]);
    expect(Array.from(kind.stats!.entropy)).toEqual([0.5, 1.5]);
    expect(kind.head_types).toEqual([["first"], [""]]);
  });

  it("refuse thumbnails or stats of the wrong size, and default v1 kinds", () => {
    const kind = { name: "self", layers: 2, heads: 1, queries: "input", keys: "input", mask: "none" };
    expect(() => decodeMeta({ ...base, kinds: [{ ...kind, thumbnails: { size: 2, data: new Uint8Array(7) } }] })).toThrow(/expected 8/);
    expect(() => decodeMeta({ ...base, kinds: [{ ...kind, stats: { self: new Uint8Array(4) } }] })).toThrow(/layers x heads/);
    const plain = decodeMeta({ ...base, kinds: [kind] }).kinds[0];
    expect([plain.streamed, plain.pool, plain.thumbnails]).toEqual([false, 1, undefined]);
  });
});
