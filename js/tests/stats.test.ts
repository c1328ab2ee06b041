import { describe, expect, it } from "vitest";
import fixture from "./fixtures/analysis-fixture.json";
import { rollout } from "../src/aggregate";
import { Derived } from "../src/derived";
import { FrameCache } from "../src/frame";
import { LayerStore, type LayerData } from "../src/source";
import {
  inductionTargets, labelOf, layerStats, localShare, matrixStats, normalizedEntropy, STAT_NAMES, MIN_TOKENS, type HeadType,
} from "../src/stats";
import { decodeBlock, decodeMask, decodeMeta, kindInfo } from "../src/wire";

type Expected = { stats: Record<string, (number | null)[][]>; types: string[][]; rollout?: number[][] };
type Case = { meta: unknown; layers: unknown[]; expected: Record<string, Expected> };
const cases = fixture as unknown as Record<string, Case>;

function close(actual: number, expected: number | null, what: string): void {
  if (expected === null) expect(actual, what).toBeNaN();
  else expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThan(1e-5);
}

function storeOf(c: Case): LayerStore {
  return new LayerStore(decodeMeta(c.meta), c.layers.map((b) => decodeBlock(b)));
}

describe("statistics and head types agree with Python (fixture)", () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: every statistic and label of every head`, () => {
      const source = storeOf(c);
      const derived = new Derived(source, new FrameCache(source.meta));
      for (const [kind, want] of Object.entries(c.expected)) {
        const info = kindInfo(source.meta, kind);
        const got = derived.stats(kind)!;
        expect(got).toHaveLength(info.layers * info.heads);
        for (const r of got) {
          for (const stat of STAT_NAMES) close(r[stat], want.stats[stat][r.layer][r.head], `${name} ${kind} L${r.layer} H${r.head} ${stat}`);
          expect(r.type, `${name} ${kind} L${r.layer} H${r.head} type`).toBe(want.types[r.layer][r.head]);
        }
      }
    });

    it(`${name}: rollout of every self-attention kind`, () => {
      const source = storeOf(c);
      for (const [kind, want] of Object.entries(c.expected)) {
        if (!want.rollout) continue;
        const info = kindInfo(source.meta, kind);
        const layers = Array.from({ length: info.layers }, (_, l) => source.peekLayer(kind, l)!);
        const heads = Array.from({ length: info.heads }, (_, h) => h);
        for (const [l, m] of rollout(layers, heads).entries()) {
          for (const [i, v] of want.rollout[l].entries()) close(m[i], v, `${name} ${kind} rollout L${l}[${i}]`);
        }
      }
    });
  }

  it("covers every label and no label", () => {
    const seen = new Set(Object.values(cases).flatMap((c) => Object.values(c.expected).flatMap((e) => e.types.flat())));
    for (const label of ["induction", "previous", "first", "self", "local", "broad", ""]) expect(seen).toContain(label);
  });
});

/** A one-layer, one-head LayerData from rows. */
function single(rows: number[][]): LayerData {
  const q = rows.length, k = rows[0].length;
  return { kind: "self", layer: 0, shape: [1, q, k], data: Float32Array.from(rows.flat()) };
}

const N = 10;
const oneHot = (col: (q: number) => number) => Array.from({ length: N }, (_, q) => Array.from({ length: N }, (_, k) => (k === col(q) ? 1 : 0)));
const causalUniform = Array.from({ length: N }, (_, q) => Array.from({ length: N }, (_, k) => (k <= q ? 1 / (q + 1) : 0)));
const causal = Uint8Array.from(causalUniform.flat().map((x) => (x > 0 ? 1 : 0)));
const typeOf = (rows: number[][], ids: number[] | null = null): HeadType =>
  layerStats(single(rows), { sameSequence: true, mask: causal, ids })[0].type;

describe("statistics (the annotated-transformer definitions)", () => {
  it("computes each statistic by hand", () => {
    const s = matrixStats(Float32Array.from([0.5, 0.5, 0, 0.2, 0.3, 0.5, 1, 0, 0]), 3, 3, true);
    const ent = (row: number[]) => -row.reduce((a, p) => a + p * Math.log(p + 1e-10), 0);
    expect(s.entropy).toBeCloseTo((ent([0.5, 0.5, 0]) + ent([0.2, 0.3, 0.5]) + ent([1, 0, 0])) / 3, 6);
    expect(s.max_weight).toBeCloseTo(2 / 3, 6);
    expect(s.dispersion).toBeCloseTo(1 / 3, 6);
    expect(s.first).toBeCloseTo((0.2 + 1) / 2, 6);
    expect(s.previous).toBeCloseTo((0.2 + 0) / 2, 6);
    expect(s.self).toBeCloseTo((0.5 + 0.3 + 0) / 3, 6);
    expect(s.distance).toBeCloseTo((0.5 + 0.7 + 2) / 3, 6);
  });

  it("leaves out rows with no weight, and makes one-sequence statistics NaN across sequences", () => {
    const s = matrixStats(Float32Array.from([1, 0, 0, 0]), 2, 2, true);
    expect(s.max_weight).toBe(1);
    expect(s.first).toBeNaN(); // the only later row is empty
    const cross = matrixStats(new Float32Array(15).fill(0.2), 3, 5, false);
    expect(cross.distance).toBeNaN();
    expect(cross.previous).toBeNaN();
    expect(cross.self).toBeNaN();
    expect(cross.max_weight).toBeCloseTo(0.2, 6);
  });

  it("counts NaN and infinite weights as 0", () => {
    const s = matrixStats(Float32Array.from([NaN, 1, Infinity, 1]), 2, 2, true);
    expect(Number.isFinite(s.entropy)).toBe(true);
    expect(s.first).toBe(0);
  });

  it("normalises entropy by the allowed keys and measures locality", () => {
    expect(normalizedEntropy(Float32Array.from(causalUniform.flat()), N, N, causal)).toBeCloseTo(1, 6);
    expect(localShare(Float32Array.from(oneHot((q) => q).flat()), N)).toBe(1);
  });
});

describe("head types (conservative labels)", () => {
  it("labels each built pattern", () => {
    expect(typeOf(oneHot((q) => Math.max(0, q - 1)))).toBe("previous");
    expect(typeOf(oneHot(() => 0))).toBe("first");
    expect(typeOf(oneHot((q) => q))).toBe("self");
    expect(typeOf(causalUniform)).toBe("broad");
    const local = Array.from({ length: N }, (_, q) => Array.from({ length: N }, (_, k) => (k <= q && k >= q - 2 ? 1 / (Math.min(q, 2) + 1) : 0)));
    expect(typeOf(local)).toBe("local");
  });

  it("finds induction only where the input repeats", () => {
    const ids = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9];
    const pairs = inductionTargets(ids);
    expect(pairs).toEqual([[5, 1], [6, 2], [7, 3], [8, 4], [9, 5]]);
    const rows = causalUniform.map((r) => [...r]);
    for (const [q, k] of pairs) rows[q] = rows[q].map((_, j) => (j === k ? 1 : 0));
    expect(typeOf(rows, ids)).toBe("induction");
    expect(typeOf(rows, ids.map((_, i) => i))).not.toBe("induction");
    expect(inductionTargets([1, 1, 1])).toEqual([]); // adjacent repeats are not induction targets
  });

  it("applies labels in priority order and never to NaN scores", () => {
    expect(labelOf({ induction: 0.5, previous: 0.9 })).toBe("induction");
    expect(labelOf({ previous: 0.59, first: 0.9 })).toBe("first");
    expect(labelOf({ previous: 0.59, first: 0.89 })).toBe("");
    expect(labelOf({ previous: NaN, broad: NaN })).toBe("");
    expect(labelOf({ local: 0.79, broad: 0.89 })).toBe("");
  });

  it("gives nothing to inputs shorter than MIN_TOKENS", () => {
    expect(layerStats(single([[1]]), { sameSequence: true, mask: null, ids: [1] })[0].type).toBe("");
    const eye = (n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
    expect(layerStats(single(eye(MIN_TOKENS - 1)), { sameSequence: true, mask: null, ids: null })[0].type).toBe("");
    expect(layerStats(single(eye(MIN_TOKENS)), { sameSequence: true, mask: null, ids: null })[0].type).toBe("self");
  });

  it("uses the kind's mask as Python does (causal from the wire)", () => {
    const info = { name: "self", layers: 1, heads: 1, queries: "input", keys: "input", mask: "causal" as const };
    expect(Array.from(decodeMask(info, N, N)!)).toEqual(Array.from(causal));
  });
});
