import { describe, expect, it } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import {
  decodeBlock, decodeMask, decodeMeta, decodeTopK, KIND_FIELDS, kindInfo, META_FIELDS, SEQUENCE_FIELDS, toFloat32,
  TOPK_BLOCK_FIELDS, VALUE_BLOCK_FIELDS, WIRE_VERSION,
} from "../src/wire";
import { floatBytesAt } from "./helpers";

const VALUES = [0.125, 0.5, 0.375, 1, 0, 1e-7, 0.3333333432674408, 2.5];

function block(data: unknown, shape = [2, 2, 2]) {
  return { kind: "self", layer: 1, dtype: "float32", shape, data };
}

describe("toFloat32", () => {
  it("reads a DataView at offset 0 without copying", () => {
    const view = floatBytesAt(VALUES, 0);
    const out = toFloat32(view);
    expect(Array.from(out)).toEqual(VALUES.map((v) => Math.fround(v)));
    expect(out.buffer).toBe(view.buffer);
  });

  it("copies a DataView at an unaligned offset", () => {
    for (const offset of [1, 2, 3, 5]) {
      const view = floatBytesAt(VALUES, offset);
      const out = toFloat32(view);
      expect(Array.from(out)).toEqual(VALUES.map((v) => Math.fround(v)));
      expect(out.byteOffset % 4).toBe(0);
    }
  });

  it("reads an aligned DataView at a non-zero offset as a view", () => {
    const view = floatBytesAt(VALUES, 8);
    const out = toFloat32(view);
    expect(out.byteOffset).toBe(8);
    expect(out[3]).toBe(1);
  });

  it("reads Uint8Array (Colab), ArrayBuffer and base64 input", () => {
    const view = floatBytesAt(VALUES, 3);
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    expect(Array.from(toFloat32(bytes))).toEqual(VALUES.map(Math.fround));
    const copy = bytes.slice();
    expect(Array.from(toFloat32(copy.buffer))).toEqual(VALUES.map(Math.fround));
    let bin = "";
    for (const b of copy) bin += String.fromCharCode(b);
    expect(Array.from(toFloat32(btoa(bin)))).toEqual(VALUES.map(Math.fround));
  });

  it("rejects a byte count that is not a multiple of 4", () => {
    expect(() => toFloat32(new Uint8Array(7))).toThrow(/multiple of 4/);
  });
});

describe("decodeBlock", () => {
  it("decodes shape and data from DataView and Uint8Array", () => {
    const view = floatBytesAt(VALUES, 1);
    const a = decodeBlock(block(view));
    expect(a.shape).toEqual([2, 2, 2]);
    expect(a.kind).toBe("self");
    expect(a.layer).toBe(1);
    expect(a.data[2]).toBeCloseTo(0.375, 7);
    const b = decodeBlock(block(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)));
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it("rejects a wrong length, a wrong dtype and a missing shape", () => {
    expect(() => decodeBlock(block(floatBytesAt(VALUES, 0), [2, 2, 3]))).toThrow(/needs 12/);
    expect(() => decodeBlock({ ...block(floatBytesAt(VALUES, 0)), dtype: "float16" })).toThrow(/float16/);
    expect(() => decodeBlock({ kind: "self", layer: 0, dtype: "float32", data: new Uint8Array(4) })).toThrow(/shape/);
  });
});

describe("decodeMeta", () => {
  const meta = {
    version: WIRE_VERSION, model: "m", warnings: ["w"],
    sequences: { input: { text: ["a", "b"], special: [false, true] } },
    kinds: [{ name: "self", layers: 1, heads: 2, queries: "input", keys: "input", mask: "none" }],
  };

  it("accepts the current version", () => {
    const m = decodeMeta(meta);
    expect(m.model).toBe("m");
    expect(m.sequences.input.special).toEqual([false, true]);
    expect(kindInfo(m, "self").heads).toBe(2);
  });

  it("throws a clear error on a version mismatch", () => {
    expect(() => decodeMeta({ ...meta, version: 2 })).toThrow(/version mismatch.*version 2.*version 3/);
    expect(() => decodeMeta({ ...meta, version: undefined })).toThrow(/version/);
  });

  it("throws on empty or malformed metadata", () => {
    expect(() => decodeMeta({})).toThrow(/empty/);
    expect(() => decodeMeta({ ...meta, kinds: [] })).toThrow(/kinds/);
    expect(() => decodeMeta({ ...meta, kinds: [{ ...meta.kinds[0], queries: "nope" }] })).toThrow(/unknown sequence/);
    expect(() => kindInfo(decodeMeta(meta), "cross")).toThrow(/no cross attention/);
  });

  it("reads the keys the Python encoder writes, in the order both declare them", () => {
    const declared = (fields: object, raw: object) => Object.keys(fields).filter((k) => k in raw);
    expect(Object.keys(fixture.meta)).toEqual(declared(META_FIELDS, fixture.meta));
    for (const seq of Object.values(fixture.meta.sequences)) expect(Object.keys(seq)).toEqual(declared(SEQUENCE_FIELDS, seq));
    for (const kind of fixture.meta.kinds) expect(Object.keys(kind)).toEqual(declared(KIND_FIELDS, kind));
    for (const block of fixture.layers) expect(Object.keys(block)).toEqual(declared(VALUE_BLOCK_FIELDS, block));
  });
});

describe("decodeMask", () => {
  const base = { name: "self", layers: 1, heads: 1, queries: "input", keys: "input" };

  it("none -> null", () => {
    expect(decodeMask({ ...base, mask: "none" }, 3, 3)).toBeNull();
  });

  it("causal -> lower triangle including the diagonal", () => {
    const m = decodeMask({ ...base, mask: "causal" }, 3, 3);
    expect(Array.from(m!)).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
  });

  it("explicit -> from mask_data, 1 = allowed", () => {
    const m = decodeMask({ ...base, mask: "explicit", mask_data: new Uint8Array([1, 0, 2, 0, 1, 1]) }, 2, 3);
    expect(Array.from(m!)).toEqual([1, 0, 1, 0, 1, 1]);
    expect(() => decodeMask({ ...base, mask: "explicit", mask_data: new Uint8Array(2) }, 2, 3)).toThrow(/6 bytes/);
  });
});

describe("the Python fixture", () => {
  const meta = decodeMeta(fixture.meta);
  const expected = fixture.expected as Record<string, number[]>;

  it("has every layer of every kind", () => {
    const keys = meta.kinds.flatMap((k) => Array.from({ length: k.layers }, (_, l) => `${k.name}/${l}`));
    expect(Object.keys(expected).sort()).toEqual(keys.sort());
    expect(fixture.layers.length).toBe(keys.length);
  });

  it("decodes every block to the values Python encoded", () => {
    for (const raw of fixture.layers) {
      const b = decodeBlock(raw);
      const want = expected[`${b.kind}/${b.layer}`];
      const info = kindInfo(meta, b.kind);
      expect(b.shape).toEqual([info.heads, meta.sequences[info.queries].text.length, meta.sequences[info.keys].text.length]);
      expect(b.data.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(b.data[i] - want[i])).toBeLessThan(1e-7);
    }
  });

  it("decodes the same bytes through unaligned DataViews", () => {
    const raw = fixture.layers[0];
    const bytes = Uint8Array.from(atob(raw.data), (c) => c.charCodeAt(0));
    const buf = new ArrayBuffer(bytes.length + 1);
    new Uint8Array(buf, 1).set(bytes);
    const b = decodeBlock({ ...raw, data: new DataView(buf, 1, bytes.length) });
    const want = expected[`${raw.kind}/${raw.layer}`];
    for (const [i, v] of want.entries()) expect(Math.abs(b.data[i] - v)).toBeLessThan(1e-7);
  });

  it("decodes masks as Python defines them", () => {
    const masks = (fixture as { expected_masks?: Record<string, number[]> }).expected_masks;
    for (const info of meta.kinds) {
      const q = meta.sequences[info.queries].text.length;
      const k = meta.sequences[info.keys].text.length;
      const m = decodeMask(info, q, k);
      const got = m ? Array.from(m) : new Array(q * k).fill(1);
      if (masks) expect(got).toEqual(masks[info.name]);
      // Masked cells hold no attention.
      for (const raw of fixture.layers.filter((l) => l.kind === info.name)) {
        const b = decodeBlock(raw);
        for (let h = 0; h < info.heads; h++) {
          for (let c = 0; c < q * k; c++) if (!got[c]) expect(b.data[h * q * k + c]).toBe(0);
        }
      }
    }
  });

  it("keeps token text as data", () => {
    expect(meta.sequences.source.text).toContain("<img src=x onerror=alert(1)>");
    expect(meta.warnings[0]).toContain("<b>");
  });
});

describe("the Python fixture: 8-bit, pooled, windowed and top-k blocks, streamed kinds", () => {
  type V2 = {
    blocks: { block: Record<string, unknown>; expected: number[] }[];
    topk: { block: Record<string, unknown>; expected_index: number[]; expected_data: number[] };
    streamed: { meta: unknown; expected_stats: Record<string, number[]> };
    expected_thumbnails: Record<string, number[]>;
  };
  const v2 = fixture as unknown as V2;
  const meta = decodeMeta(fixture.meta);

  it("decodes uint8, pooled and windowed blocks to the values Python means", () => {
    const seen = new Set<string>();
    for (const { block: raw, expected } of v2.blocks) {
      const b = decodeBlock(raw);
      seen.add(`${raw.dtype}/${b.pool}/${(b.q0 ?? 0) > 0 && (b.k0 ?? 0) > 0 ? "window" : "whole"}`);
      expect(b.data.length).toBe(expected.length);
      // uint8 values decode in float32 here, float64 in numpy: equal to float32 precision.
      for (let i = 0; i < expected.length; i++) expect(Math.abs(b.data[i] - expected[i])).toBeLessThan(1e-6);
      if (raw.dtype === "uint8") expect(b.exact).toBe(false);
      expect(Object.keys(raw)).toEqual(Object.keys(VALUE_BLOCK_FIELDS).filter((k) => k in raw));
    }
    expect(seen).toEqual(new Set(["uint8/1/whole", "uint8/2/whole", "float32/2/whole", "float32/1/window"]));
  });

  it("quantizes within the stated error of the exact layer", () => {
    for (const { block: raw } of v2.blocks.filter((b) => b.block.dtype === "uint8" && b.block.pool === 1)) {
      const b = decodeBlock(raw);
      const want = (fixture.expected as Record<string, number[]>)[`${b.kind}/${b.layer}`];
      for (let i = 0; i < want.length; i++) expect(Math.abs(b.data[i] - want[i])).toBeLessThanOrEqual(b.maxError! + 1e-7);
    }
  });

  it("decodes the top-k block", () => {
    const t = decodeTopK(v2.topk.block);
    expect(Object.keys(v2.topk.block)).toEqual(Object.keys(TOPK_BLOCK_FIELDS));
    expect(Array.from(t.index)).toEqual(v2.topk.expected_index);
    for (const [i, w] of t.data.entries()) expect(Math.abs(w - v2.topk.expected_data[i])).toBeLessThan(1e-7);
  });

  it("reads every kind's thumbnails and a streamed kind's statistics and head types", () => {
    for (const info of meta.kinds) expect(Array.from(info.thumbnails!.data)).toEqual(v2.expected_thumbnails[info.name]);
    const streamed = decodeMeta(v2.streamed.meta).kinds[0];
    expect(streamed.streamed).toBe(true);
    expect(streamed.pool).toBeGreaterThan(1);
    for (const [name, values] of Object.entries(v2.streamed.expected_stats)) {
      expect(Array.from(streamed.stats![name]).map((x) => Math.fround(x))).toEqual(values.map((x) => Math.fround(x)));
    }
    expect(streamed.head_types!.length).toBe(streamed.layers);
  });
});
