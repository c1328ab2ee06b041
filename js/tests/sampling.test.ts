import { describe, expect, it } from "vitest";
import fixture from "./fixtures/sampling-fixture.json";
import { drawToken, nextTokenDistribution, rankByLogit, seededRandom, softmax } from "../src/sampling";

const LOGITS = Float32Array.from([1, 3, 0, 2, -1]); // ranks: 1, 3, 0, 2, 4

function expected(logits: number[], t: number): number[] {
  const e = logits.map((v) => Math.exp(v / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe("next-token distribution", () => {
  it("ranks tokens by logit, ties by id", () => {
    expect(Array.from(rankByLogit(LOGITS))).toEqual([1, 3, 0, 2, 4]);
    expect(Array.from(rankByLogit(Float32Array.from([2, 5, 5, NaN])))).toEqual([1, 2, 0, 3]);
  });

  it("is the softmax at temperature 1 with no cuts", () => {
    const d = nextTokenDistribution(LOGITS, { temperature: 1, topK: 0, topP: 1 });
    const p = expected([1, 3, 0, 2, -1], 1);
    expect(Array.from(d.ids)).toEqual([1, 3, 0, 2, 4]);
    for (const [i, id] of d.ids.entries()) expect(d.probs[i]).toBeCloseTo(p[id], 12);
    for (const [i, v] of softmax(LOGITS).entries()) expect(v).toBeCloseTo(p[i], 12);
  });

  it("divides logits by the temperature", () => {
    for (const t of [0.25, 0.7, 2]) {
      const d = nextTokenDistribution(LOGITS, { temperature: t, topK: 0, topP: 1 });
      const p = expected([1, 3, 0, 2, -1], t);
      for (const [i, id] of d.ids.entries()) expect(d.probs[i]).toBeCloseTo(p[id], 12);
    }
    const sharp = nextTokenDistribution(LOGITS, { temperature: 0.1, topK: 0, topP: 1 });
    const flat = nextTokenDistribution(LOGITS, { temperature: 2, topK: 0, topP: 1 });
    expect(sharp.probs[0]).toBeGreaterThan(0.99);
    expect(flat.probs[0]).toBeLessThan(0.5);
  });

  it("keeps the top k and renormalises them", () => {
    const d = nextTokenDistribution(LOGITS, { temperature: 1, topK: 2, topP: 1 });
    expect(Array.from(d.ids)).toEqual([1, 3]);
    const e3 = Math.exp(3), e2 = Math.exp(2);
    expect(d.probs[0]).toBeCloseTo(e3 / (e3 + e2), 12);
    expect(d.probs[0] + d.probs[1]).toBeCloseTo(1, 12);
  });

  it("keeps the smallest set reaching top-p, after top-k, renormalised", () => {
    const p = expected([1, 3, 0, 2, -1], 1); // sorted: 0.636, 0.234, 0.086, 0.032, 0.012
    // p = 0.8: 0.636 < 0.8 so the second is needed; 0.870 >= 0.8 stops there.
    const d = nextTokenDistribution(LOGITS, { temperature: 1, topK: 0, topP: 0.8 });
    expect(Array.from(d.ids)).toEqual([1, 3]);
    expect(d.probs[0]).toBeCloseTo(p[1] / (p[1] + p[3]), 12);
    // p below the top token's probability keeps only it.
    expect(Array.from(nextTokenDistribution(LOGITS, { temperature: 1, topK: 0, topP: 0.5 }).ids)).toEqual([1]);
    // top-k first: within the top 3 (renormalised), the top 2 hold 0.870/0.956 = 0.91 >= 0.9
    const both = nextTokenDistribution(LOGITS, { temperature: 1, topK: 3, topP: 0.9 });
    expect(Array.from(both.ids)).toEqual([1, 3]);
  });

  it("is greedy at temperature 0", () => {
    const d = nextTokenDistribution(LOGITS, { temperature: 0, topK: 0, topP: 1 });
    expect(Array.from(d.ids)).toEqual([1]);
    expect(Array.from(d.probs)).toEqual([1]);
  });
});

describe("sampling", () => {
  it("draws by cumulative probability", () => {
    const d = { ids: Int32Array.from([7, 3, 9]), probs: Float64Array.from([0.5, 0.3, 0.2]) };
    expect(drawToken(d, 0)).toBe(7);
    expect(drawToken(d, 0.49)).toBe(7);
    expect(drawToken(d, 0.5)).toBe(3);
    expect(drawToken(d, 0.79)).toBe(3);
    expect(drawToken(d, 0.81)).toBe(9);
    expect(drawToken(d, 0.9999999)).toBe(9);
  });

  it("repeats with the same seed and matches the distribution", () => {
    const a = seededRandom(42), b = seededRandom(42), c = seededRandom(43);
    const xs = Array.from({ length: 5 }, a), ys = Array.from({ length: 5 }, b), zs = Array.from({ length: 5 }, c);
    expect(xs).toEqual(ys);
    expect(xs).not.toEqual(zs);
    const d = nextTokenDistribution(LOGITS, { temperature: 1, topK: 0, topP: 1 });
    const r = seededRandom(7);
    const counts = new Map<number, number>();
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const id = drawToken(d, r());
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [i, id] of d.ids.entries()) expect((counts.get(id) ?? 0) / n).toBeCloseTo(d.probs[i], 1);
  });
});

describe("same as transformers' logits warpers (fixture from tests/make_sampling_fixture.py)", () => {
  const logits = Float32Array.from(fixture.logits);
  for (const c of fixture.cases) {
    it(`temperature ${c.temperature}, top-k ${c.topK}, top-p ${c.topP}`, () => {
      const d = nextTokenDistribution(logits, { temperature: c.temperature, topK: c.topK, topP: c.topP });
      expect(Array.from(d.ids)).toEqual(c.ids);
      for (const [i, p] of c.probs.entries()) expect(d.probs[i]).toBeCloseTo(p, 6);
    });
  }
});
