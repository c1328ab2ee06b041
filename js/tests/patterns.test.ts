// @vitest-environment jsdom
/**
 * The pattern library's tabs and user views inside the explorer: the Census tab draws Python's labels
 * and numbers and selects heads and inputs; Compare shows A − B exactly as the layers' difference; the
 * Training tab steps through snapshots and reports the step; a user view's render function gets the
 * selection and the layer and follows them; user statistics become Statistics columns.
 */
import { describe, expect, it, vi } from "vitest";
import { renderExplorer, type ExplorerExtras } from "../src/render";
import { SelectionStore } from "../src/state";
import { bestInputs, decodeCensus } from "../src/views/census";
import { difference, headChange, shownMatrix } from "../src/views/compare";
import { divergingColor } from "../src/views/cells";
import { decodeTraining, snapshotMatrix } from "../src/views/training";
import { renderOf, type UserViewContext } from "../src/views/user";
import { CENSUS_BEST, decodeMeta, WIRE_VERSION, type WireCensusPanel } from "../src/wire";
import { fakeMeta, fakeSource, flush, randomLayer, testHost } from "./helpers";

const L = 4, H = 3;
const dom = testHost(() => vi.restoreAllMocks());
const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const i32 = (values: number[]) => new Uint8Array(Int32Array.from(values).buffer);

function censusPanel(): WireCensusPanel {
  const P = 2, n = P * L * H;
  const means = Array.from({ length: n }, (_, i) => i / n);
  const labels = Array.from({ length: L }, (_, l) => Array.from({ length: H }, (_, x) => (l === 1 && x === 2 ? "previous" : "")));
  const best = Array.from({ length: n * CENSUS_BEST }, (_, i) => (i % CENSUS_BEST === 2 ? -1 : (i % CENSUS_BEST) + 1));
  return {
    kind: "self", layers: L, heads: H, patterns: ["previous", "first"], thresholds: [0.6, 0.9],
    means: f32(means), low: f32(means.map((m) => m / 2)), high: f32(means.map((m) => m + 0.1)),
    scored: i32(Array(n).fill(4)), shown: i32(Array(n).fill(3)), labels,
    evidence: labels.map((row) => row.map((x) => (x ? "previous 0.95 (95% of inputs 0.9-1.0); >= 0.6 on 3 of 4 inputs" : ""))),
    inputs: ["natural: a", "natural: b", "repeated: 40 ids"], probes: ["natural", "natural", "repeated"],
    best: i32(best), best_scores: f32(best.map((b) => (b < 0 ? NaN : 1 / (b + 1)))), current: 0,
  };
}

function mount(extras: ExplorerExtras, tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]) {
  const meta = fakeMeta({ tokens, layers: L, heads: H });
  const source = fakeSource(meta);
  const store = new SelectionStore({ kind: "self", heads: [0, 1, 2] });
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, extras });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  return { meta, source, store, root };
}

describe("the Census tab", () => {
  it("decodes Python's numbers and lists each head's best inputs", () => {
    const c = decodeCensus(censusPanel());
    expect(c.means.length).toBe(2 * L * H);
    expect(bestInputs(c, 0, 1, 2)).toEqual([{ input: 1, score: 0.5 }, { input: 2, score: expect.closeTo(1 / 3, 6) }]);
    expect(() => decodeCensus({ ...censusPanel(), means: f32([1, 2]) })).toThrow(/census means holds 2 values/);
  });

  it("opens first, colours labelled heads, selects on click and asks the host for an input", () => {
    const showInput = vi.fn();
    const { root, store } = mount({ census: decodeCensus(censusPanel()), showInput });
    const view = root.querySelector<HTMLElement>('[data-view="census"]')!;
    expect(view.hidden).toBe(false);
    const cell = view.querySelector<HTMLElement>('.txm-cell[data-row="1"][data-col="2"]')!;
    expect(cell.textContent).toBe("P");
    expect(view.querySelectorAll(".txm-cell").length).toBe(L * H);
    cell.click();
    expect(store.get()).toMatchObject({ layer: 1, head: 2 });
    expect(showInput).toHaveBeenCalledWith(1); // the best input for its label (input 0 is shown already)
    expect(view.querySelector(".txm-census-evidence")!.textContent).toContain("previous 0.95");
    expect(cell.classList.contains("txm-sel")).toBe(true);
    showInput.mockClear();
    const button = view.querySelector<HTMLButtonElement>('.txm-census-input[data-input="2"]')!;
    button.click();
    expect(showInput).toHaveBeenCalledWith(2);
  });

  it("disables inputs a report does not hold", () => {
    const { root, store } = mount({ census: decodeCensus({ ...censusPanel(), texts: [0, -1, 1] }) });
    store.set({ layer: 0, head: 0 });
    const view = root.querySelector<HTMLElement>('[data-view="census"]')!;
    expect(view.querySelector<HTMLButtonElement>('.txm-census-input[data-input="1"]')!.disabled).toBe(true);
    expect(view.querySelector<HTMLButtonElement>('.txm-census-input[data-input="2"]')!.disabled).toBe(false);
  });
});

describe("the Compare tab", () => {
  it("computes A − B cell by cell and the mean change per head", () => {
    const a = randomLayer("self", 0, 2, 4, 4, null, 1), b = randomLayer("self", 0, 2, 4, 4, null, 2);
    const d = difference(shownMatrix(a, [], 1), shownMatrix(b, [], 1));
    for (let i = 0; i < 16; i++) expect(d[i]).toBeCloseTo(a.data[16 + i] - b.data[16 + i], 7);
    const mean = shownMatrix(a, [0, 1], -1);
    expect(mean[5]).toBeCloseTo((a.data[5] + a.data[21]) / 2, 7);
    const change = headChange(a, b);
    let total = 0;
    for (let i = 0; i < 16; i++) total += Math.abs(a.data[i] - b.data[i]);
    expect(change[0]).toBeCloseTo(total / 16, 7);
    expect(divergingColor(0)).toEqual([255, 255, 255]);
    expect(divergingColor(1)[0]).toBeGreaterThan(divergingColor(1)[2]);
    expect(divergingColor(-1)[2]).toBeGreaterThan(divergingColor(-1)[0]);
  });

  it("draws A, B and A − B and the heads that moved, or says cells do not line up", () => {
    const meta = fakeMeta({ layers: L, heads: H });
    const b = fakeSource(meta);
    const raw = { ...JSON.parse(JSON.stringify({ version: WIRE_VERSION })), model: "b", warnings: [],
      sequences: { input: { text: ["[CLS]", "the", "dog", "sat", "[SEP]"], special: [true, false, false, false, true], segment: [0, 0, 0, 0, 0] } },
      kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "none" }] };
    decodeMeta(raw);
    const layers = Array.from({ length: L }, (_, l) => {
      const layer = b.peekLayer("self", l)!;
      return { kind: "self", layer: l, dtype: "float32", shape: layer.shape, pool: 1, q0: 0, k0: 0, data: new Uint8Array(layer.data.buffer) };
    });
    const delta = f32(Array.from({ length: L * H }, (_, i) => (i === 7 ? -0.5 : i / 100)));
    const { root, store } = mount({ compare: { labels: ["A", "B"], cells: true, note: "1 token(s) differ", meta: raw, layers, deltas: { self: { entropy: delta } } } });
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="compare"]')!.click();
    const view = root.querySelector<HTMLElement>('[data-view="compare"]')!;
    expect(view.querySelectorAll("canvas").length).toBe(3);
    expect(view.querySelector(".txm-compare-note")!.textContent).toBe("1 token(s) differ");
    expect(view.querySelectorAll(".txm-compare-overview .txm-cell").length).toBe(L * H);
    const first = view.querySelector<HTMLElement>(".txm-compare-table tr[data-key]")!;
    expect(first.dataset.key).toBe("7"); // the largest |Δ entropy|
    first.click();
    expect(store.get()).toMatchObject({ layer: 2, head: 1 });
    dom.cleanup?.();
    const other = mount({ compare: { labels: ["A", "B"], cells: false, note: "only the per-head statistics", meta: raw, layers: [], deltas: { self: { entropy: delta } } } });
    other.root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="compare"]')!.click();
    const v2 = other.root.querySelector<HTMLElement>('[data-view="compare"]')!;
    expect(v2.querySelectorAll("canvas").length).toBe(0);
    expect(v2.querySelector(".txm-compare-matrices")!.textContent).toContain("only the per-head statistics");
  });
});

describe("the Training tab", () => {
  const S = 3, T = 2;
  const thumbs = new Uint8Array(S * L * H * T * T).map((_, i) => i % 256);
  const raw = { steps: [0, 50, 100], kinds: [{ name: "self", layers: L, heads: H, size: T, thumbnails: thumbs,
    fluctuation: f32(Array.from({ length: S * L }, (_, i) => (i < L ? NaN : i / 100))) }] };

  it("reads each snapshot's thumbnails", () => {
    const k = decodeTraining(raw).kinds[0];
    const m = snapshotMatrix(k, 1, 2, 1, []);
    const base = ((1 * L + 2) * H + 1) * T * T;
    expect(Array.from(m)).toEqual(Array.from(thumbs.slice(base, base + 4), (v) => v / 255).map((v) => expect.closeTo(v, 6)));
    expect(() => decodeTraining({ ...raw, steps: [0] })).toThrow(/does not match 1 snapshots/);
  });

  it("steps with the slider and reports the step", () => {
    const onStep = vi.fn();
    const { root } = mount({ training: raw, step: 2, onStep });
    const view = root.querySelector<HTMLElement>('[data-view="training"]')!;
    expect(view.hidden).toBe(false);
    expect(view.dataset.step).toBe("2");
    const slider = view.querySelector<HTMLInputElement>(".txm-train-step")!;
    slider.value = "1";
    slider.dispatchEvent(new Event("input"));
    expect(onStep).toHaveBeenCalledWith(1);
    expect(view.querySelector(".txm-train-label")!.textContent).toBe("step 50 (2 of 3)");
    expect(view.querySelectorAll(".txm-train-fluct .txm-cell").length).toBe(L * S);
  });
});

describe("a user view", () => {
  it("finds render as a named export, a default function or default.render", () => {
    const f = () => 1;
    expect(renderOf({ render: f })).toBe(f);
    expect(renderOf({ default: f })).toBe(f);
    expect(renderOf({ default: { render: f } })).toBe(f);
    expect(renderOf({})).toBeNull();
  });

  it("gets the selection and the layer, follows them, and is cleaned up", async () => {
    const calls: UserViewContext[] = [];
    const cleanup = vi.fn();
    const module = {
      render(view: UserViewContext) {
        calls.push(view);
        view.el.textContent = `${view.tokens.queries[1]} layer ${view.layer?.layer}`;
        return cleanup;
      },
    };
    const { root, store, source } = mount({ views: [{ name: "<b>mine</b>", source: "" }], loadView: () => Promise.resolve(module) },
      ["[CLS]", "<img src=x onerror=alert(1)>", "cat", "[SEP]"]);
    const tab = root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="user-0"]')!;
    expect(tab.textContent).toBe("<b>mine</b>");
    expect(tab.querySelector("b")).toBeNull();
    tab.click();
    await flush();
    const body = root.querySelector<HTMLElement>('[data-view="user-0"] .txm-user-body')!;
    expect(body.textContent).toBe("<img src=x onerror=alert(1)> layer 0");
    store.set({ layer: 2, head: 1, pinned: 3 });
    const last = calls[calls.length - 1];
    expect(last.selection).toMatchObject({ layer: 2, head: 1, token: 3 });
    expect(last.layer!.data).toBe(source.peekLayer("self", 2)!.data);
    expect([last.layer!.heads, last.layer!.queries, last.layer!.keys]).toEqual([H, 4, 4]);
    expect(cleanup).toHaveBeenCalled();
    last.select({ layer: 3 });
    expect(store.get().layer).toBe(3);
  });

  it("shows a module that fails to load, or exports no render, in the tab", async () => {
    const { root } = mount({ views: [{ name: "bad", source: "" }, { name: "empty", source: "" }],
      loadView: (_v, i) => (i === 0 ? Promise.reject(new Error("blocked by the policy")) : Promise.resolve({})) });
    await flush();
    expect(root.querySelector('[data-view="user-0"] .txm-error')!.textContent).toContain("blocked by the policy");
    expect(root.querySelector('[data-view="user-1"] .txm-error')!.textContent).toContain("exports no render function");
  });
});

describe("user statistics", () => {
  it("are columns of the Statistics tab and colourings of the overview", () => {
    const meta = fakeMeta({ layers: L, heads: H });
    meta.kinds[0].user_stats = { diag: Float32Array.from({ length: L * H }, (_, i) => i / 10) };
    const source = fakeSource(meta);
    const store = new SelectionStore({ kind: "self", heads: [0, 1, 2] });
    dom.cleanup = renderExplorer(dom.host, source, store, { dark: false });
    const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
    const select = root.querySelector<HTMLSelectElement>("select.txm-grid-colour")!;
    expect(Array.from(select.options, (o) => o.value)).toContain("diag");
    select.value = "diag";
    select.dispatchEvent(new Event("change"));
    expect(root.querySelector<HTMLElement>('[data-view="grid"]')!.dataset.colour).toBe("diag");
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="stats"]')!.click();
    const th = root.querySelector<HTMLElement>('[data-view="stats"] th[data-column="diag"]')!;
    expect(th.textContent).toBe("diag");
    const row = root.querySelector<HTMLElement>('[data-view="stats"] tbody tr[data-key="7"]')!;
    expect(row.querySelector(".txm-user-stat")!.textContent).toBe("0.700");
    th.click(); // sort by it, largest first
    expect(root.querySelector<HTMLElement>('[data-view="stats"] tbody tr')!.dataset.key).toBe(String(L * H - 1));
  });
});
