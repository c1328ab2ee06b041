// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { meanOfHeads } from "../src/aggregate";
import { FrameCache } from "../src/frame";
import { SelectionStore, type Selection } from "../src/state";
import { buildSvg, escapeXml, RECT_LIMIT } from "../src/svg";
import { kindInfo } from "../src/wire";
import { causalMask, fakeMeta, randomLayer } from "./helpers";

const TOKENS = ["[CLS]", "<script>", "alert('x')", "</script>", "a & b", "\u0007bell", "[SEP]"];

function picture(opts: { n?: number; causal?: boolean; state?: Partial<Selection>; rasterize?: (c: Uint32Array, w: number, h: number) => string } = {}) {
  const tokens = opts.n ? Array.from({ length: opts.n }, (_, i) => `t${i}`) : TOKENS;
  const n = tokens.length;
  const meta = fakeMeta({ tokens, layers: 1, heads: 3, causal: opts.causal });
  const info = kindInfo(meta, "self");
  const layer = randomLayer("self", 0, 3, n, n, opts.causal ? causalMask(n) : null);
  const state = new SelectionStore({ kind: "self", heads: [0, 1, 2], ...opts.state }).get();
  const frame = new FrameCache(meta).frame(info, layer, state.pair);
  const pic = buildSvg({ meta, state, frame, matrix: meanOfHeads(frame.layer, state.heads), dark: false }, opts.rasterize);
  const doc = new DOMParser().parseFromString(pic.svg, "image/svg+xml");
  return { pic, doc, n };
}

describe("SVG export", () => {
  it("escapes text and drops characters XML forbids", () => {
    expect(escapeXml(`<script>"a" & 'b'</script>`)).toBe("&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;&lt;/script&gt;");
    expect(escapeXml("a\u0000b\ud800")).toBe("a\ufffdb\ufffd");
    expect(escapeXml("😀 猫 שלום")).toBe("😀 猫 שלום");
  });

  it("is well-formed SVG whose token labels are text, never markup", () => {
    const { pic, doc } = picture();
    expect(pic.svg.startsWith("<svg")).toBe(true);
    expect(doc.getElementsByTagName("parsererror")).toHaveLength(0);
    expect(doc.documentElement.getAttribute("width")).toBe(String(pic.width));
    expect(doc.getElementsByTagName("script")).toHaveLength(0);
    const texts = Array.from(doc.getElementsByTagName("text")).map((t) => t.textContent);
    expect(texts).toContain("<script>");
    expect(texts).toContain("</script>");
    expect(texts).toContain("a & b");
    expect(texts).toContain("\ufffdbell");
  });

  it("draws one <rect> per non-zero cell up to RECT_LIMIT tokens, hatching masked cells", () => {
    const { doc, n } = picture({ causal: true });
    const cells = Array.from(doc.getElementsByTagName("rect")).filter((r) => r.getAttribute("width") === r.getAttribute("height") && r.parentElement?.getAttribute("shape-rendering") === "crispEdges");
    expect(cells.length).toBe(n * n); // every allowed cell has weight > 0 here, every masked one is hatched
    expect(cells.filter((r) => r.getAttribute("fill") === "url(#txm-hatch)")).toHaveLength((n * (n - 1)) / 2);
  });

  it("embeds the heat map as a PNG image for longer inputs", () => {
    let asked: number[] = [];
    const { doc } = picture({ n: RECT_LIMIT + 4, rasterize: (colors, w, h) => {
      asked = [colors.length, w, h];
      return "data:image/png;base64,AAAA";
    } });
    expect(asked).toEqual([(RECT_LIMIT + 4) ** 2, RECT_LIMIT + 4, RECT_LIMIT + 4]);
    const image = doc.getElementsByTagName("image")[0];
    expect(image.getAttribute("href")).toBe("data:image/png;base64,AAAA");
    expect(doc.querySelectorAll("g[shape-rendering] rect")).toHaveLength(0);
  });

  it("draws the focused token's arcs in its heads' colours as paths", () => {
    const { doc } = picture({ state: { pinned: 2, pinnedSide: "query", heads: [0, 2] } });
    const paths = Array.from(doc.getElementsByTagName("path"));
    expect(paths.length).toBeGreaterThan(0);
    expect(new Set(paths.map((p) => p.getAttribute("stroke"))).size).toBe(2);
    const focused = Array.from(doc.getElementsByTagName("text")).filter((t) => t.getAttribute("font-weight") === "700");
    expect(focused.map((t) => t.textContent)).toEqual(["alert('x')", "alert('x')"]); // matrix row and column labels
  });

  it("shows the mask itself when asked, with its own legend and title", () => {
    const { doc, pic } = picture({ causal: true, state: { showMask: true } });
    expect(pic.svg).toContain("causal mask");
    const texts = Array.from(doc.getElementsByTagName("text")).map((t) => t.textContent);
    expect(texts).toContain("allowed");
    expect(texts).not.toContain("weight (√ scale)");
  });
});
