import { describe, expect, it } from "vitest";
import { colorDistance, headColor, headColors, maskColors, weightColor, weightRamp, weightScale } from "../src/colors";

function minPairwise(colors: [number, number, number][]): number {
  let min = Infinity;
  for (let i = 0; i < colors.length; i++) for (let j = i + 1; j < colors.length; j++) min = Math.min(min, colorDistance(colors[i], colors[j]));
  return min;
}

describe("head colours", () => {
  for (const dark of [false, true]) {
    it(`are distinct for every head count 1..64 (${dark ? "dark" : "light"})`, () => {
      for (let n = 1; n <= 64; n++) {
        const colors = headColors(n, dark);
        expect(colors).toHaveLength(n);
        if (n > 1) expect(minPairwise(colors), `${n} heads`).toBeGreaterThan(0.03);
        for (const c of colors) for (const v of c) expect(Number.isInteger(v) && v >= 0 && v <= 255).toBe(true);
      }
    });
  }

  it("stay far apart for typical head counts", () => {
    expect(minPairwise(headColors(12))).toBeGreaterThan(0.12);
    expect(minPairwise(headColors(12, true))).toBeGreaterThan(0.12);
    expect(minPairwise(headColors(64))).toBeGreaterThan(0.05);
    expect(minPairwise(headColors(100))).toBeGreaterThan(0.03);
  });

  it("keep a head's colour when the head count changes", () => {
    expect(headColors(64).slice(0, 12)).toEqual(headColors(12));
  });

  it("stand out from the background", () => {
    for (const c of headColors(12, false)) expect(colorDistance(c, [255, 255, 255])).toBeGreaterThan(0.2);
    for (const c of headColors(12, true)) expect(colorDistance(c, [30, 30, 34])).toBeGreaterThan(0.3);
  });

  it("are cached and stable", () => {
    expect(headColor(3, 12)).toEqual(headColors(12)[3]);
    expect(headColor(99, 12)).toEqual([128, 128, 128]);
  });
});

describe("weight ramp", () => {
  it("goes from the background to a strong colour, monotonically in lightness", () => {
    for (const dark of [false, true]) {
      const lut = weightRamp(dark);
      expect(lut.length).toBe(1024);
      const lum = (i: number) => 0.2126 * lut[i * 4] + 0.7152 * lut[i * 4 + 1] + 0.0722 * lut[i * 4 + 2];
      for (let i = 1; i < 256; i++) {
        if (dark) expect(lum(i)).toBeGreaterThanOrEqual(lum(i - 1) - 0.5);
        else expect(lum(i)).toBeLessThanOrEqual(lum(i - 1) + 0.5);
      }
      expect(Math.abs(lum(255) - lum(0))).toBeGreaterThan(150);
      expect(lut[3]).toBe(255);
    }
    expect(weightColor(0)).toEqual([255, 255, 255]);
  });

  it("clamps weights outside 0..1", () => {
    expect(weightColor(-1)).toEqual(weightColor(0));
    expect(weightColor(7)).toEqual(weightColor(1));
  });

  it("draws masked cells unlike zero weight", () => {
    for (const dark of [false, true]) {
      for (const m of maskColors(dark)) expect(colorDistance(m, weightColor(0, dark))).toBeGreaterThan(0.03);
    }
  });
});

describe("weight scale", () => {
  it("is the square root, clamped", () => {
    expect(weightScale(0.25)).toBe(0.5);
    expect(weightScale(-1)).toBe(0);
    expect(weightScale(4)).toBe(1);
    expect(weightScale(Number.NaN)).toBe(0);
  });
});
