import { describe, expect, it } from "vitest";
import {
  arcStyle, cellAt, cellSpan, displayToken, formatWeight, headOffset, labelTicks, matrixGeometry,
  rowCenter, tokenAt, truncateLabel, visibleRows,
} from "../src/layout";

describe("token labels", () => {
  it("truncates by code points with an ellipsis", () => {
    expect(truncateLabel("short", 10)).toBe("short");
    expect(truncateLabel("abcdefghij", 10)).toBe("abcdefghij");
    expect(truncateLabel("abcdefghijk", 10)).toBe("abcdefghi…");
    expect(truncateLabel("😀😀😀😀", 3)).toBe("😀😀…");
    expect(truncateLabel("abc", 1)).toBe("…");
  });

  it("makes whitespace tokens visible", () => {
    expect(displayToken("\n")).toBe("⏎");
    expect(displayToken("  ")).toBe("␣␣");
    expect(displayToken("")).toBe("∅");
    expect(displayToken(" cat")).toBe(" cat");
    expect(displayToken("a\tb")).toBe("a⇥b");
  });
});

describe("token rows", () => {
  it("centres and hit-tests rows", () => {
    expect(rowCenter(0, 20)).toBe(10);
    expect(rowCenter(3, 20, 5)).toBe(75);
    expect(tokenAt(0, 20, 5)).toBe(0);
    expect(tokenAt(39.9, 20, 5)).toBe(1);
    expect(tokenAt(100, 20, 5)).toBe(-1);
    expect(tokenAt(-1, 20, 5)).toBe(-1);
  });

  it("finds the rows inside a viewport", () => {
    expect(visibleRows(0, 100, 20, 512)).toEqual([0, 4]);
    expect(visibleRows(30, 100, 20, 512)).toEqual([1, 6]);
    expect(visibleRows(10220, 100, 20, 512)).toEqual([511, 511]);
    expect(visibleRows(0, 100, 20, 0)).toEqual([0, -1]);
  });

  it("fans heads out symmetrically inside a row", () => {
    expect(headOffset(0, 1, 20)).toBe(0);
    expect(headOffset(0, 3, 20)).toBeCloseTo(-6);
    expect(headOffset(1, 3, 20)).toBeCloseTo(0);
    expect(headOffset(2, 3, 20)).toBeCloseTo(6);
  });
});

describe("matrix geometry", () => {
  it("caps the cell size for short sequences and shrinks it for long ones", () => {
    expect(matrixGeometry(12, 12, 560).cell).toBe(28);
    const g = matrixGeometry(512, 512, 560);
    expect(g.cell).toBeCloseTo(560 / 512);
    expect(g.width).toBeCloseTo(560);
    const wide = matrixGeometry(4, 8, 400);
    expect(wide.width).toBe(8 * wide.cell);
    expect(wide.height).toBe(4 * wide.cell);
  });

  it("hit-tests cells", () => {
    const g = matrixGeometry(4, 8, 160, 20);
    expect(g.cell).toBe(20);
    expect(cellAt(0, 0, g)).toEqual({ query: 0, key: 0 });
    expect(cellAt(45, 61, g)).toEqual({ query: 3, key: 2 });
    expect(cellAt(159.9, 79.9, g)).toEqual({ query: 3, key: 7 });
    expect(cellAt(160, 10, g)).toBeNull();
    expect(cellAt(10, 80, g)).toBeNull();
    expect(cellAt(-1, 10, g)).toBeNull();
  });

  it("gives adjacent pixel spans without gaps", () => {
    expect(cellSpan(0, 1.5, 2)).toEqual([0, 3]);
    expect(cellSpan(1, 1.5, 2)[0]).toBe(cellSpan(0, 1.5, 2)[1]);
  });
});

describe("label ticks", () => {
  it("shows every label when cells are wide enough", () => {
    expect(labelTicks(12, 28)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it("thins labels to a nice step when cells are small", () => {
    const ticks = labelTicks(512, 560 / 512, 12);
    const step = ticks[1] - ticks[0];
    expect([10, 20, 50]).toContain(step);
    expect(step * (560 / 512)).toBeGreaterThanOrEqual(12);
    expect(ticks[0]).toBe(0);
    expect(ticks.every((t) => t % step === 0)).toBe(true);
  });

  it("always labels the focused token and keeps neighbours clear of it", () => {
    const ticks = labelTicks(100, 3, 12, 37);
    expect(ticks).toContain(37);
    expect(ticks).not.toContain(40);
    expect(ticks).toContain(30);
  });

  it("handles empty axes", () => {
    expect(labelTicks(0, 10)).toEqual([]);
  });
});

describe("formatting and styles", () => {
  it("prints weights with at least 4 significant digits", () => {
    expect(formatWeight(0.123456)).toBe("0.1235");
    expect(formatWeight(1)).toBe("1.000");
    expect(formatWeight(0)).toBe("0");
    expect(formatWeight(0.0000123456)).toBe("1.235e-5");
    expect(formatWeight(0.00123456)).toBe("0.001235");
  });

  it("draws heavier arcs wider and more opaque", () => {
    const lo = arcStyle(0.01), hi = arcStyle(0.9);
    expect(hi.width).toBeGreaterThan(lo.width);
    expect(hi.alpha).toBeGreaterThan(lo.alpha);
    expect(arcStyle(5).alpha).toBeLessThanOrEqual(1);
  });
});
