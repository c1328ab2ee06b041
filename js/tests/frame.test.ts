import { describe, expect, it } from "vitest";
import { cropMatrix, FrameCache, pairCrop, pairSegments } from "../src/frame";
import { hasPair, sanitize, SelectionStore } from "../src/state";
import { decodeMeta, kindInfo, WIRE_VERSION } from "../src/wire";
import { fakeMeta, randomLayer } from "./helpers";

// [CLS] a b [SEP] | c d [SEP]: text A is tokens 0-3, text B tokens 4-6.
const TOKENS = ["[CLS]", "a", "b", "[SEP]", "c", "d", "[SEP]"];
const SEGMENTS = [0, 0, 0, 0, 1, 1, 1];
const meta = fakeMeta({ tokens: TOKENS, segments: SEGMENTS, layers: 2, heads: 2 });
const info = kindInfo(meta, "self");

describe("the sentence-pair filter", () => {
  it("maps filters to query and key segments", () => {
    expect(pairSegments("all")).toEqual([null, null]);
    expect(pairSegments("AB")).toEqual([0, 1]);
    expect(pairSegments("BA")).toEqual([1, 0]);
  });

  it("crops rows to the query text and columns to the key text, with inverse maps", () => {
    const crop = pairCrop(meta, info, "AB");
    expect(Array.from(crop.rows)).toEqual([0, 1, 2, 3]);
    expect(Array.from(crop.cols)).toEqual([4, 5, 6]);
    expect(Array.from(crop.rowOf)).toEqual([0, 1, 2, 3, -1, -1, -1]);
    expect(Array.from(crop.colOf)).toEqual([-1, -1, -1, -1, 0, 1, 2]);
    expect(crop.identity).toBe(false);
    expect(pairCrop(meta, info, "all").identity).toBe(true);
  });

  it("cuts a matrix to the crop without new data", () => {
    const n = TOKENS.length;
    const m = Float32Array.from({ length: n * n }, (_, i) => i);
    const cut = cropMatrix(m, n, pairCrop(meta, info, "BA"));
    expect(Array.from(cut)).toEqual([4 * n + 0, 4 * n + 1, 4 * n + 2, 4 * n + 3, 5 * n, 5 * n + 1, 5 * n + 2, 5 * n + 3, 6 * n, 6 * n + 1, 6 * n + 2, 6 * n + 3]);
    expect(cropMatrix(m, n, pairCrop(meta, info, "all"))).toBe(m);
  });

  it("builds cropped frames once per layer and filter", () => {
    const frames = new FrameCache(meta);
    const layer = randomLayer("self", 0, 2, 7, 7, null);
    const frame = frames.frame(info, layer, "BB");
    expect(frame.layer.shape).toEqual([2, 3, 3]);
    expect(frame.queries.text).toEqual(["c", "d", "[SEP]"]);
    expect(frame.keys.segment).toEqual([1, 1, 1]);
    expect(frame.layer.data[1 * 9 + 0 * 3 + 2]).toBe(layer.data[1 * 49 + 4 * 7 + 6]); // head 1, (c, [SEP])
    expect(frames.frame(info, layer, "BB")).toBe(frame);
    expect(frames.frame(info, layer, "all").layer).toBe(layer);
  });

  it("crops the mask with the weights", () => {
    const causal = decodeMeta({
      version: WIRE_VERSION, model: "m", warnings: [],
      sequences: { input: { text: TOKENS, special: TOKENS.map(() => false), segment: SEGMENTS } },
      kinds: [{ name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "causal" }] });
    const frames = new FrameCache(causal);
    const frame = frames.frame(causal.kinds[0], randomLayer("self", 0, 1, 7, 7, null), "BA");
    expect(Array.from(frame.mask!)).toEqual(new Array(12).fill(1)); // B queries see every A key
    const back = frames.frame(causal.kinds[0], randomLayer("self", 0, 1, 7, 7, null), "AB");
    expect(Array.from(back.mask!)).toEqual(new Array(12).fill(0)); // A queries see no B key
  });

  it("is offered only for sentence pairs, and reset for others", () => {
    expect(hasPair(meta, info)).toBe(true);
    const single = fakeMeta({ tokens: ["a", "b"] });
    expect(hasPair(single, single.kinds[0])).toBe(false);
    const s = new SelectionStore({ pair: "AB", aggregate: "rollout" }).get();
    expect(sanitize(single, s).pair).toBe("all");
    expect(sanitize(meta, s).pair).toBe("AB");
    expect(sanitize(meta, s).aggregate).toBe("rollout");
  });
});
