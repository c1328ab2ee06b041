// @vitest-environment jsdom
/**
 * Value weighting, the Q/K tab and the Flow tab against what Python computes (the wire fixture's
 * replayed trace): weighted cells equal Python's weighted_rows for whole layers and for windows, the
 * scores equal Python's q.k * scale, and the explorer's switch, tabs and clicks drive the selection.
 */
import { describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import { Answers } from "../src/analyses";
import { renderExplorer } from "../src/render";
import { LayerStore } from "../src/source";
import { SelectionStore } from "../src/state";
import { ValueWeights, weighBlock } from "../src/values";
import { WeightedSource } from "../src/weighted";
import { edgeRows, flowColumns, headsOf } from "../src/views/flow";
import { headScores } from "../src/views/qk";
import { whyNoValueWeighting } from "../src/views/weighting";
import {
  decodeFlow, decodeMeta, decodeQueriesKeys, decodeValueNorms, WIRE_VERSION, type FlowGraph, type QueriesKeys, type ValueNorms,
} from "../src/wire";
import { fakeMeta, flush, testHost } from "./helpers";

interface Message {
  request: { payload: Record<string, number | string> };
  reply: { content: unknown };
  buffers: string[];
  expected: { weighted?: number[]; attention?: number[]; scores?: number[]; unrotated_scores?: number[] };
}
const m = fixture.messages as unknown as Record<string, Message>;
const norms = (): ValueNorms => decodeValueNorms(m.value_norms.reply.content, m.value_norms.buffers);
const pairs = (): QueriesKeys => decodeQueriesKeys(m.queries_keys.reply.content, m.queries_keys.buffers);
const flow = (): FlowGraph => decodeFlow(m.flow.reply.content);
const L = 2, H = 2, N = 5;
const TOKENS = ["<s>", " the", " cat", " sat", " down"];

/** The fixture's replayed trace: its metadata (offering every analysis) and every layer of its attention. */
function replayed() {
  const meta = decodeMeta({
    version: WIRE_VERSION, model: "fixture/replay", warnings: [],
    sequences: { input: { text: TOKENS, special: [true, false, false, false, false], segment: [0, 0, 0, 0, 0], ids: [0, 1, 2, 3, 4] } },
    kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "causal" }],
    analyses: { self: ["value", "qk", "flow"] },
  });
  const att = Float32Array.from(m.value_norms.expected.attention!);
  const layers = Array.from({ length: L }, (_, l) => ({
    kind: "self", layer: l, shape: [H, N, N] as [number, number, number], data: att.slice(l * H * N * N, (l + 1) * H * N * N),
  }));
  return { meta, layers, att };
}

describe("value weighting", () => {
  it("weighs whole layers and windows as Python's weighted_rows does", () => {
    const v = norms();
    const { layers } = replayed();
    const want = m.value_norms.expected.weighted!;
    for (const layer of layers) {
      const got = weighBlock(layer, v);
      got.data.forEach((x, i) => {
        expect(Math.abs(x - want[layer.layer * H * N * N + i])).toBeLessThan(1e-6);
      });
    }
    // A window needs no other cell of its rows: the totals come from Python.
    const l = layers[1];
    const window = { kind: "self", layer: 1, shape: [H, 2, 2] as [number, number, number], q0: 3, k0: 1, pool: 1,
      data: Float32Array.from([0, 1].flatMap((h) => [3, 4].flatMap((q) => [1, 2].map((k) => l.data[(h * N + q) * N + k])))) };
    const got = weighBlock(window, v);
    for (const h of [0, 1]) {
      for (const [r, q] of [3, 4].entries()) {
        for (const [c, k] of [1, 2].entries()) {
          expect(Math.abs(got.data[(h * 2 + r) * 2 + c] - want[((1 * H + h) * N + q) * N + k])).toBeLessThan(1e-6);
        }
      }
    }
    expect(() => weighBlock({ ...l, pool: 2 }, v)).toThrow(/pooled/);
  });

  it("the source gives weighted blocks only while the selection says value, and waits for the norms", async () => {
    const { meta, layers } = replayed();
    const base = new LayerStore(meta, layers);
    const store = new SelectionStore({ kind: "self", heads: [0, 1] });
    let answer: (v: ValueNorms) => void = () => {};
    const fetch = vi.fn(() => new Promise<ValueNorms>((resolve) => { answer = resolve; }));
    const source = new WeightedSource(base, store, new ValueWeights(fetch));
    expect(source.peekLayer("self", 0)).toBe(layers[0]);
    store.set({ weighting: "value" });
    expect(source.peekLayer("self", 0)).toBeUndefined(); // never raw weights under a "value" label
    const pending = source.getLayer("self", 1);
    const loading = source.values.load("self");
    expect(fetch).toHaveBeenCalledTimes(1);
    answer(norms());
    await loading;
    const weighted = await pending;
    expect(Math.abs(weighted.data[4 * N] - m.value_norms.expected.weighted![H * N * N + 4 * N])).toBeLessThan(1e-6);
    expect(source.peekLayer("self", 1)).toBe(weighted); // cached with the block
    expect(source.variant("self")).toBe("value");
    store.set({ weighting: "raw" });
    expect(source.peekLayer("self", 1)).toBe(layers[1]);
  });

  it("says why it cannot weigh a kind, and what to do", () => {
    const plain = fakeMeta();
    expect(whyNoValueWeighting(plain, plain.kinds[0], true)).toMatch(/transformers model/);
    expect(whyNoValueWeighting(plain, plain.kinds[0], false)).toMatch(/report holds no value norms/);
    const long = { ...plain, analyses: { self: ["qk"] } };
    expect(whyNoValueWeighting(long, { ...plain.kinds[0], streamed: true }, true)).toMatch(/max_tokens/);
    expect(whyNoValueWeighting(replayed().meta, replayed().meta.kinds[0], true)).toBe("");
  });
});

describe("queries and keys", () => {
  it("scores are Python's q.k * scale, with and without the rotation; softmax is over the allowed keys", () => {
    const qk = pairs();
    expect([qk.layer, qk.query, qk.kvHeads, qk.groups]).toEqual([1, 3, 1, [0, 0]]);
    for (let head = 0; head < H; head++) {
      const { scores, unrotated, softmax } = headScores(qk, head, (j) => j <= qk.query);
      for (let j = 0; j < N; j++) {
        expect(Math.abs(scores[j] - m.queries_keys.expected.scores![head * N + j])).toBeLessThan(1e-5);
        expect(Math.abs(unrotated![j] - m.queries_keys.expected.unrotated_scores![head * N + j])).toBeLessThan(1e-5);
      }
      expect(softmax[4]).toBe(0);
      expect(Math.abs(softmax.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
    }
  });
});

describe("flow", () => {
  it("decodes the edges and places them between the right rows", () => {
    const g = flow();
    expect(g.token).toBe(4);
    expect(g.edges.length).toBe((m.flow.reply.content as { edges: unknown[] }).edges.length);
    for (const e of g.edges) {
      const [from, to] = edgeRows(e);
      expect(to).toBe(from + 1);
      expect(from).toBe(e.type === "mlp" || e.type === "mlp_residual" ? 2 * e.layer + 1 : 2 * e.layer);
    }
    expect(flowColumns(g, 5)).toEqual([0, 1, 2, 3, 4]);
    const many = flowColumns(g, 100);
    expect(many).toContain(4);
    expect(many.length).toBeLessThanOrEqual(5);
    for (const [, heads] of headsOf(g)) expect(heads.map(([, w]) => w)).toEqual([...heads.map(([, w]) => w)].sort((a, b) => b - a));
  });

  it("keeps answers per question and asks a failed one again only when told", async () => {
    const arrived = vi.fn();
    const answers = new Answers<number>(arrived);
    const make = vi.fn().mockRejectedValueOnce(new Error("busy")).mockResolvedValue(7);
    answers.want("a", make);
    answers.want("a", make);
    await flush();
    expect(answers.error("a")?.message).toBe("busy");
    answers.want("a", make);
    expect(make).toHaveBeenCalledTimes(1);
    answers.want("a", make, true);
    await flush();
    expect(answers.peek("a")).toBe(7);
    expect(arrived).toHaveBeenCalledTimes(2);
  });
});

describe("the explorer", () => {
  const dom = testHost();

  function mount(fail = false) {
    const { meta, layers } = replayed();
    const store = new SelectionStore({ kind: "self", heads: [0, 1] });
    const values = new ValueWeights(() => (fail ? Promise.reject(new Error("no projection found")) : Promise.resolve(norms())));
    const analyses = { queriesKeys: vi.fn(() => Promise.resolve(pairs())), flow: vi.fn(() => Promise.resolve(flow())) };
    dom.cleanup = renderExplorer(dom.host, new LayerStore(meta, layers), store, { dark: false, values, analyses });
    const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
    return { store, root, analyses };
  }

  it("the weighting switch draws value-weighted cells; a failure says why and goes back to raw", async () => {
    const { store, root } = mount();
    const value = root.querySelector<HTMLButtonElement>('.txm-weigh[data-weighting="value"]')!;
    expect(value.disabled).toBe(false);
    value.click();
    expect(store.get().weighting).toBe("value");
    await flush();
    expect(root.querySelector(".txm-weigh.txm-on")?.getAttribute("data-weighting")).toBe("value");
    dom.cleanup?.();
    const failing = mount(true);
    failing.root.querySelector<HTMLButtonElement>('.txm-weigh[data-weighting="value"]')!.click();
    await flush();
    expect(failing.store.get().weighting).toBe("raw");
    expect(failing.root.querySelector(".txm-errors")?.textContent).toMatch(/no projection found/);
  });

  it("the Statistics tab follows the weighting: value-weighted shares on the first token", async () => {
    const { store, root } = mount();
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="stats"]')!.click();
    await flush();
    const view = root.querySelector<HTMLElement>('[data-view="stats"]')!;
    const column = [...view.querySelectorAll("th")].findIndex((th) => th.dataset.column === "first");
    const first = (layer: number, head: number) =>
      Number(view.querySelector(`tr[data-key="${layer * H + head}"]`)!.children[column].textContent);
    const share = (values: number[], layer: number, head: number) => {
      let sum = 0;
      for (let q = 1; q < N; q++) sum += values[((layer * H + head) * N + q) * N];
      return sum / (N - 1);
    };
    expect(Math.abs(first(1, 0) - share(m.value_norms.expected.attention!, 1, 0))).toBeLessThan(6e-4);
    store.set({ weighting: "value" });
    await flush();
    for (let l = 0; l < L; l++) for (let x = 0; x < H; x++) {
      expect(Math.abs(first(l, x) - share(m.value_norms.expected.weighted!, l, x))).toBeLessThan(6e-4);
    }
  });

  it("a long input captured reduced: the value button is disabled and a visible note says what to do", () => {
    const meta = fakeMeta();
    const long = { ...meta, kinds: [{ ...meta.kinds[0], streamed: true }], analyses: { self: ["qk"] } };
    const store = new SelectionStore({ kind: "self", heads: [0, 1, 2], weighting: "value" });
    const layers = Array.from({ length: 4 }, (_, l) => ({ kind: "self", layer: l, shape: [3, 5, 5] as [number, number, number],
      data: new Float32Array(75).fill(0.2) }));
    dom.cleanup = renderExplorer(dom.host, new LayerStore(long, layers), store, { dark: false, values: new ValueWeights() });
    const value = dom.host.querySelector<HTMLButtonElement>('.txm-weigh[data-weighting="value"]')!;
    expect(value.disabled).toBe(true);
    expect(value.title).toMatch(/max_tokens/);
    expect(dom.host.querySelector(".txm-weighting-note")?.textContent).toMatch(/long input/);
    expect(store.get().weighting).toBe("raw"); // the explorer corrects what cannot be had
  });

  it("the Flow tab draws the routes; clicking an edge or a head selects its layer and head", async () => {
    const { store, root, analyses } = mount();
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="flow"]')!.click();
    await flush();
    const view = root.querySelector<HTMLElement>('[data-view="flow"]')!;
    expect(view.dataset.state).toBe("done");
    expect(analyses.flow).toHaveBeenCalledWith("self", 4, 0.04);
    const edge = view.querySelector<SVGPathElement>('.txm-flow-edge[data-type="attention"][data-layer="1"]')!;
    edge.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect([store.get().layer, store.get().head]).toEqual([1, Number(edge.dataset.head)]);
    const head = view.querySelector<HTMLButtonElement>(".txm-flow-head")!;
    head.click();
    expect([store.get().layer, store.get().head]).toEqual([Number(head.dataset.layer), Number(head.dataset.head)]);
    const node = view.querySelector<SVGCircleElement>('.txm-flow-node[data-token="2"]')!;
    node.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(store.get().pinned).toBe(2);
    await flush();
    expect(analyses.flow).toHaveBeenLastCalledWith("self", 2, 0.04); // the routes into the pinned token
  });

  it("the Q/K tab lists each key's score and softmax, and marks heads sharing a key/value head", async () => {
    const { store, root } = mount();
    store.set({ layer: 1, pinned: 3, pinnedSide: "query", head: 1 });
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="qk"]')!.click();
    await flush();
    const view = root.querySelector<HTMLElement>('[data-view="qk"]')!;
    expect([view.dataset.state, view.dataset.query, view.dataset.head, view.dataset.rotary]).toEqual(["done", "3", "1", "true"]);
    const rows = [...view.querySelectorAll<HTMLElement>(".txm-qk-row[data-key]")];
    expect(rows.map((r) => Number(r.dataset.key))).toEqual([0, 1, 2, 3]); // causal: keys up to the query
    for (const r of rows) {
      expect(Math.abs(Number(r.dataset.score) - m.queries_keys.expected.scores![N + Number(r.dataset.key)])).toBeLessThan(1e-5);
    }
    expect(view.querySelectorAll(".txm-qk-head.txm-shared").length).toBe(2);
  });
});
