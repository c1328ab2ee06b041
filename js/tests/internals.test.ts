// @vitest-environment jsdom
import { describe, expect, it, vi } from "vitest";
import { columnWindow, decodeInternals, LENS_CHUNK, LensStore, lensFetcher, type Internals, type LensReply } from "../src/internals";
import { renderExplorer } from "../src/render";
import { SelectionStore } from "../src/state";
import { attentionRow } from "../src/views/generation";
import { byDistance, lensTop } from "../src/views/lens";
import { openChannel } from "../src/rpc";
import { REPLY, REPLY_ERROR, REQUEST_LENS, type WireRequest } from "../src/wire";
import { deferred, FakeModel, fakeMeta, fakeSource, flush, testHost } from "./helpers";

const EVIL = "<img src=x onerror=alert(1)>";
const TOKENS = ["The", "cat", EVIL, "sat", "on", "mat"];
const N = TOKENS.length, LAYERS = 2, K = 3;
const VOCAB = [" the", " cat", EVIL, " sat", " on", " mat", " dog", " Paris"];

const floatBytes = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** Wire-shaped `_internals`: norms r*10+t, cosines 1 - (r+t)/100; the lens comes from `lensReply`. */
function rawInternals(opts: { generation?: boolean } = {}) {
  const rows = LAYERS + 1;
  const norms: number[] = [], cosines: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < N; t++) {
      norms.push(1 + r * 10 + t);
      cosines.push(r === 0 ? NaN : 1 - (r + t) / 100);
    }
  }
  const logits = VOCAB.map((_, i) => (i === 7 ? 5 : i * 0.1));
  return {
    hidden: { layers: LAYERS, tokens: N, norms: floatBytes(norms), cosines: floatBytes(cosines), last_normed: true },
    lens: { layers: LAYERS, tokens: N, k: K },
    logits: { position: N - 1, data: floatBytes(logits) },
    vocab: VOCAB,
    ...(opts.generation ? { generation: { prompt: 3, steps: 3, sample: false } } : {}),
  };
}

/** What Python replies to a lens request: top ids (r+t+i) % V with probabilities 0.6, 0.3, 0.1,
 * (layers + 1) x positions x k. */
function lensReply(positions: number[]): LensReply {
  const ids: number[] = [], probs: number[] = [];
  for (let r = 0; r <= LAYERS; r++) {
    for (const t of positions) {
      for (let i = 0; i < K; i++) {
        ids.push((r + t + i) % VOCAB.length);
        probs.push([0.6, 0.3, 0.1][i]);
      }
    }
  }
  return { positions, k: K, ids: Int32Array.from(ids), probs: Float32Array.from(probs) };
}

const answerLens = () => vi.fn(async (positions: number[]) => lensReply(positions));

const dom = testHost();

function mount(internals: Internals | null) {
  const meta = fakeMeta({ tokens: TOKENS, layers: LAYERS, heads: 2, causal: true });
  meta.sequences.input.ids = [0, 1, 2, 3, 4, 5];
  const source = fakeSource(meta);
  const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1], head: -1 });
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, internals });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  const open = (name: string) => root.querySelector<HTMLButtonElement>(`.txm-tab[data-tab="${name}"]`)!.click();
  const view = (name: string) => root.querySelector<HTMLElement>(`[data-view="${name}"]`)!;
  return { root, store, source, open, view };
}

describe("decodeInternals", () => {
  it("decodes every part and reads {} as none", () => {
    const x = decodeInternals(rawInternals({ generation: true }))!;
    expect(x.hidden!.norms[1 * N + 2]).toBe(13);
    expect(Number.isNaN(x.hidden!.cosines[0])).toBe(true);
    expect([x.lens!.layers, x.lens!.tokens, x.lens!.k]).toEqual([LAYERS, N, K]);
    expect(x.lens!.peek(0)).toBeUndefined(); // nothing of the lens comes eagerly
    expect(x.logits!.tokens).toBe(N);
    expect(x.logits!.peek(N - 1)![7]).toBe(5);
    expect(x.generation).toEqual({ prompt: 3, steps: 3, sample: false });
    expect(x.step).toBe(3);
    expect(decodeInternals({})).toBeNull();
    expect(decodeInternals(undefined)).toBeNull();
  });

  it("fetches the lens in chunks, nearest the focus first, and keeps what came", async () => {
    const replies: (() => void)[] = [];
    const fetch = vi.fn((positions: number[]) => new Promise<LensReply>((resolve) => replies.push(() => resolve(lensReply(positions)))));
    const answer = async () => {
      replies.shift()!();
      await flush();
    };
    const lens = new LensStore(LAYERS, 100, K, fetch);
    const heard: (Error | undefined)[] = [];
    lens.subscribe((err) => heard.push(err));
    const window = byDistance(Array.from({ length: 40 }, (_, i) => 30 + i), 50);
    expect(window.slice(0, 3)).toEqual([50, 49, 51]);
    lens.want(window);
    expect(lens.loading).toBe(true);
    expect(fetch).toHaveBeenCalledTimes(1); // one request at a time
    expect(fetch.mock.calls[0][0]).toEqual(window.slice(0, LENS_CHUNK));
    await answer();
    expect(fetch).toHaveBeenCalledTimes(2); // the next chunk goes once the first came
    expect(fetch.mock.calls[1][0]).toEqual(window.slice(LENS_CHUNK, 2 * LENS_CHUNK));
    expect(lensTop(lens, 2, 50)!.map((x) => x.id)).toEqual([(2 + 50) % 8, (3 + 50) % 8, (4 + 50) % 8]);
    expect(lensTop(lens, 0, 50)![0].prob).toBeCloseTo(0.6);
    expect(lensTop(lens, 0, 30)).toBeNull();
    await answer();
    await answer();
    expect(fetch).toHaveBeenCalledTimes(3); // 16 + 16 + 8
    expect(lens.loading).toBe(false);
    expect(heard).toEqual([undefined, undefined, undefined]);
    lens.want([31, 29, 70]); // 31 is here: only 29 and 70 are asked for
    expect(fetch.mock.calls[3][0]).toEqual([29, 70]);
    await answer();
    lens.want(Array.from({ length: 20 }, (_, i) => i)); // 0..15 asked now, 16..19 queued
    lens.want([90]); // a moved window replaces what was queued
    expect(fetch).toHaveBeenCalledTimes(5);
    await answer();
    expect(fetch).toHaveBeenCalledTimes(6);
    expect(fetch.mock.calls[5][0]).toEqual([90]);
    await answer();
    expect(lens.peek(16)).toBeUndefined();
    expect(lens.peek(90)).toBeDefined();
  });

  it("remembers a failed request, tells its listeners, and retries when asked", async () => {
    const fetch = vi.fn(async (_positions: number[]): Promise<LensReply> => {
      throw new Error("kernel busy");
    });
    const lens = new LensStore(LAYERS, N, K, fetch);
    const heard: (Error | undefined)[] = [];
    lens.subscribe((err) => heard.push(err));
    lens.want([1, 2]);
    await flush();
    expect(heard.map((e) => e?.message)).toEqual(["kernel busy"]);
    expect(lens.error(2)?.message).toBe("kernel busy");
    lens.want([1, 2]);
    expect(fetch).toHaveBeenCalledTimes(1);
    lens.retry();
    lens.want([1, 2]);
    expect(fetch).toHaveBeenCalledTimes(2);
    const malformed = new LensStore(LAYERS, N, K, async (positions) => ({ ...lensReply(positions), ids: new Int32Array(1) }));
    const errors: (Error | undefined)[] = [];
    malformed.subscribe((err) => errors.push(err));
    malformed.want([0]);
    await flush();
    expect(errors[0]?.message).toMatch(/malformed lens reply/);
    const offline = new LensStore(LAYERS, N, K);
    offline.want([0]);
    expect(offline.error(0)?.message).toMatch(/computed by Python on request/);
  });

  // Timeouts and cancelling are the channel's (js/tests/wire-rpc.test.ts), for the lens too.
  it("asks Python over the channel and matches the replies by id", async () => {
    const model = new FakeModel({});
    const fetch = lensFetcher(openChannel(model));
    const [first, second] = [fetch([3, 4]), fetch([5])];
    const [ask1, ask2] = model.sent as WireRequest[];
    expect(model.sent).toEqual([{ type: REQUEST_LENS, id: ask1.id, payload: { positions: [3, 4] } }, { type: REQUEST_LENS, id: ask2.id, payload: { positions: [5] } }]);
    const reply = lensReply([5]);
    model.emit("msg:custom", { type: REPLY_ERROR, id: ask1.id, message: "position must be in 0..3, got 4" });
    model.emit("msg:custom", { type: REPLY, id: ask2.id, content: { positions: [5], k: K } },
      [new DataView(reply.ids.buffer), new DataView(reply.probs.buffer)]);
    await expect(first).rejects.toThrow(/could not compute the logit lens: position must be in 0..3, got 4/);
    const got = await second;
    expect([Array.from(got.ids), got.positions]).toEqual([Array.from(reply.ids), [5]]);
  });

  it("refuses data of the wrong size with a clear error", () => {
    const raw = rawInternals();
    raw.hidden.norms = floatBytes([1, 2, 3]);
    expect(() => decodeInternals(raw)).toThrow(/hidden.norms holds 3 values, expected 18/);
  });

  it("windows long inputs around the focus", () => {
    expect(columnWindow(10, 3, 20)).toEqual([0, 10]);
    expect(columnWindow(1000, 500, 100)).toEqual([450, 550]);
    expect(columnWindow(1000, -1, 100)).toEqual([900, 1000]);
    expect(columnWindow(1000, 2, 100)).toEqual([0, 100]);
  });
});

describe("internals tabs", () => {
  it("appear only when the trace has the data", () => {
    const { root } = mount(null);
    expect(root.querySelector('.txm-tab[data-tab="hidden"]')).toBeNull();
    dom.cleanup?.();
    const withData = mount(decodeInternals(rawInternals()));
    const tabs = Array.from(withData.root.querySelectorAll<HTMLElement>(".txm-tab")).map((b) => b.dataset.tab);
    expect(tabs).toEqual(["grid", "heads", "layers", "stats", "hidden", "lens", "next"]);
  });

  it("hidden states: a layers x tokens heat map linked to the token selection", () => {
    const { open, view, store } = mount(decodeInternals(rawInternals()));
    open("hidden");
    const v = view("hidden");
    expect(v.dataset.drawn).toBe("1");
    expect(v.querySelectorAll(".txm-heat-cell")).toHaveLength((LAYERS + 1) * N);
    expect(v.querySelectorAll("img")).toHaveLength(0);
    expect(Array.from(v.querySelectorAll(".txm-heat-token")).map((e) => e.textContent)).toContain(EVIL);
    const cell = v.querySelector<HTMLElement>('.txm-heat-cell[data-row="2"][data-col="4"]')!;
    expect(cell.title).toContain("norm 25.00");
    expect(cell.title).toContain("cosine to the row above 0.9400");
    expect(cell.title).toContain("layer 2 after the final norm");
    expect(Array.from(v.querySelectorAll(".txm-heat-label")).map((e) => e.textContent)).toEqual(["", "emb", "L1", "L2+norm"]);
    cell.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(store.get().hover).toBe(4);
    expect(Array.from(v.querySelectorAll(".txm-sel")).every((e) => (e as HTMLElement).dataset.col === "4")).toBe(true);
    expect(v.querySelectorAll(".txm-sel")).toHaveLength(LAYERS + 2);
    cell.click();
    expect(store.get().pinned).toBe(4);
    // darker = larger norm: the last row's cells are darker than the first row's
    const light = v.querySelector<HTMLElement>('.txm-heat-cell[data-row="0"][data-col="0"]')!.style.background;
    const dark = v.querySelector<HTMLElement>('.txm-heat-cell[data-row="2"][data-col="5"]')!.style.background;
    expect(light).not.toBe(dark);
    const select = v.querySelector<HTMLSelectElement>(".txm-hidden-metric")!;
    select.value = "cosine";
    select.dispatchEvent(new Event("change"));
    expect(v.querySelector<HTMLElement>('.txm-heat-cell[data-row="0"][data-col="0"]')!.style.background).toBe("transparent");
  });

  it("logit lens: asks for the columns it shows, then top-1 per layer and position, top-k on hover", async () => {
    const fetch = answerLens();
    const { open, view, store } = mount(decodeInternals(rawInternals(), undefined, fetch));
    expect(fetch).not.toHaveBeenCalled(); // only the open tab asks
    open("lens");
    const v = view("lens");
    expect(fetch).toHaveBeenCalledWith([5, 4, 3, 2, 1, 0]); // the last token first when none is selected
    expect(v.dataset.state).toBe("computing");
    expect(v.querySelector(".txm-lens-status")!.textContent).toContain("computing… 0 of 6 positions");
    expect(v.querySelector('.txm-heat-cell[data-row="1"][data-col="1"]')!.textContent).toBe("…");
    await flush();
    expect(v.dataset.state).toBe("done");
    expect(v.dataset.drawn).toBe("1");
    const cell = v.querySelector<HTMLElement>('.txm-heat-cell[data-row="1"][data-col="1"]')!;
    expect(cell.textContent).toBe(VOCAB[2]); // (1 + 1 + 0) % 8 = 2: the evil string, as text
    expect(v.querySelectorAll("img")).toHaveLength(0);
    cell.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(store.get().hover).toBe(1);
    const detail = v.querySelector(".txm-lens-detail")!.textContent!;
    expect(detail).toContain("layer 1, after #1 cat");
    expect(detail).toContain("60.0%");
    expect(detail).toContain("␣sat 30.0%");
    expect(fetch).toHaveBeenCalledTimes(1); // hovering asks for nothing more
  });

  it("logit lens: shows Python's error in the widget and retries on request", async () => {
    let fail = true;
    const fetch = vi.fn(async (positions: number[]) => {
      if (fail) throw new Error("Python could not compute the logit lens: out of memory");
      return lensReply(positions);
    });
    const { open, view, root } = mount(decodeInternals(rawInternals(), undefined, fetch));
    open("lens");
    await flush();
    const v = view("lens");
    expect(v.dataset.state).toBe("error");
    expect(v.querySelector(".txm-lens-status")!.textContent).toContain("logit lens unavailable: Python could not compute the logit lens: out of memory");
    expect(root.querySelector(".txm-errors")!.textContent).toContain("out of memory");
    fail = false;
    v.querySelector<HTMLButtonElement>(".txm-lens-retry")!.click();
    await flush();
    expect(v.dataset.state).toBe("done");
    expect(v.querySelector('.txm-heat-cell[data-row="2"][data-col="5"]')!.textContent).toBe("␣Paris"); // (2 + 5) % 8
  });

  it("logit lens: a long input asks for a window around the selected token", async () => {
    const raw = rawInternals();
    const fetch = vi.fn(async (positions: number[]) => lensReply(positions));
    const x = decodeInternals({ ...raw, lens: { layers: LAYERS, tokens: 500, k: K } }, undefined, fetch)!;
    const { open, view, store } = mount(x);
    store.set({ pinned: 3, pinnedSide: "query" });
    open("lens");
    expect(fetch.mock.calls[0][0].slice(0, 3)).toEqual([3, 2, 4]);
    await flush();
    expect(view("lens").querySelectorAll(".txm-heat-token")).toHaveLength(96);
    for (let i = 0; i < 8; i++) await flush();
    const asked = fetch.mock.calls.flatMap((c) => c[0]);
    expect(new Set(asked)).toEqual(new Set(Array.from({ length: 96 }, (_, i) => i)));
  });

  it("next token: bars, controls recomputing, seeded sampling", () => {
    const { open, view } = mount(decodeInternals(rawInternals()));
    open("next");
    const v = view("next");
    expect(v.dataset.drawn).toBe("1");
    const labels = () => Array.from(v.querySelectorAll(".txm-next-token")).map((e) => e.textContent);
    expect(labels()[0]).toBe("␣Paris");
    expect(labels()).toHaveLength(VOCAB.length);
    const topK = v.querySelector<HTMLInputElement>('input[data-control="top-k"]')!;
    topK.value = "2";
    topK.dispatchEvent(new Event("change"));
    expect(labels()).toHaveLength(2);
    expect(v.querySelector(".txm-inside-note")!.textContent).toContain("2 of 8 tokens can be drawn");
    const temperature = v.querySelector<HTMLInputElement>('input[data-control="temperature"]')!;
    const before = v.querySelector(".txm-next-prob")!.textContent;
    temperature.value = "2";
    temperature.dispatchEvent(new Event("input"));
    expect(v.querySelector(".txm-next-prob")!.textContent).not.toBe(before);
    const sample = v.querySelector<HTMLButtonElement>(".txm-next-sample")!;
    const draws = () => {
      const seed = v.querySelector<HTMLInputElement>('input[data-control="seed"]')!;
      seed.value = "5";
      seed.dispatchEvent(new Event("change"));
      return Array.from({ length: 6 }, () => {
        sample.click();
        return v.querySelector<HTMLElement>(".txm-next-draw")!.dataset.id;
      });
    };
    const first = draws();
    expect(draws()).toEqual(first);
    expect(first.every((id) => id === "7" || id === "6")).toBe(true); // only the top 2 can be drawn
    expect(v.querySelector(".txm-next-draw")!.textContent).toMatch(/^drew ␣(Paris|dog) \(\d+\.\d%\)$/);
    expect(v.querySelectorAll(".txm-next-bar.txm-drawn")).toHaveLength(1);
  });

  it("next token: another position's logits are fetched on demand", async () => {
    const wait = deferred<Float32Array>();
    const fetch = vi.fn(() => wait.promise);
    const { open, view, store } = mount(decodeInternals(rawInternals(), fetch));
    open("next");
    store.set({ pinned: 2, pinnedSide: "query" });
    const v = view("next");
    expect(fetch).toHaveBeenCalledWith(2);
    expect(v.dataset.drawn).toBe("0");
    expect(v.textContent).toContain("the text goes on with ␣sat");
    wait.resolve(Float32Array.from(VOCAB.map((_, i) => (i === 1 ? 9 : 0))));
    await flush();
    expect(v.dataset.drawn).toBe("1");
    expect(v.querySelector(".txm-next-token")!.textContent).toBe("␣cat");
  });

  it("generation: the scrubber shows tokens up to the step and pins the newest", () => {
    const { open, view, store, source, root } = mount(decodeInternals(rawInternals({ generation: true })));
    // a generation opens on its scrubber
    expect(root.querySelector('.txm-tab[data-tab="generation"]')!.getAttribute("aria-selected")).toBe("true");
    const v = view("generation");
    const strip = () => Array.from(v.querySelectorAll<HTMLElement>(".txm-gen-token"));
    expect(strip()).toHaveLength(N); // opened first when the trace is a generation
    expect(strip().filter((e) => e.classList.contains("txm-generated")).map((e) => e.dataset.index)).toEqual(["3", "4", "5"]);
    const slider = v.querySelector<HTMLInputElement>(".txm-gen-step")!;
    slider.value = "1";
    slider.dispatchEvent(new Event("input"));
    expect(store.get().pinned).toBe(3);
    expect(strip()).toHaveLength(4);
    expect(v.querySelector(".txm-gen-label")!.textContent).toBe("step 1 of 3: generated sat");
    const focus = v.querySelector<HTMLElement>(".txm-gen-token.txm-focus")!;
    expect(focus.dataset.index).toBe("3");
    const row = attentionRow(source.peekLayer("self", 0)!, 3, -1, [0, 1]);
    expect(strip()[0].title).toBe(`#0 The: attention from sat ${(row[0] * 100).toFixed(1)}%`);
    v.querySelector<HTMLButtonElement>(".txm-gen-back")!.click();
    expect(store.get().pinned).toBe(2);
    expect(v.querySelector(".txm-gen-label")!.textContent).toBe("step 0 of 3: the prompt");
    // the other internals views follow the step: the hidden map shows prompt + step tokens
    open("hidden");
    expect(view("hidden").querySelectorAll(".txm-heat-token")).toHaveLength(3);
  });

  it("attentionRow averages the selected heads or takes one head", () => {
    const layer = { kind: "self", layer: 0, shape: [2, 2, 2] as [number, number, number], data: Float32Array.from([1, 0, 0.5, 0.5, 0, 1, 0.25, 0.75]) };
    expect(Array.from(attentionRow(layer, 1, -1, [0, 1]))).toEqual([0.375, 0.625]);
    expect(Array.from(attentionRow(layer, 0, 1, [0, 1]))).toEqual([0, 1]);
  });
});

describe("generation steps in the arc and matrix views", () => {
  it("show tokens up to the step only", () => {
    const meta = fakeMeta({ tokens: TOKENS, layers: LAYERS, heads: 2, causal: true });
    const source = fakeSource(meta);
    const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1], head: -1 });
    dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, internals: decodeInternals(rawInternals({ generation: true })) });
    const arcTokens = () => dom.host.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]').length;
    expect(arcTokens()).toBe(N);
    const slider = dom.host.querySelector<HTMLInputElement>(".txm-gen-step")!;
    slider.value = "1";
    slider.dispatchEvent(new Event("input"));
    expect(arcTokens()).toBe(4);
    expect(dom.host.querySelector<HTMLElement>('[data-view="arc"]')!.dataset.focusToken).toBe("3");
    expect(dom.host.querySelector<HTMLElement>('[data-view="matrix"]')!.dataset.focusRow).toBe("3");
    slider.value = "3";
    slider.dispatchEvent(new Event("input"));
    expect(arcTokens()).toBe(N);
  });

  it("stepFrame cuts the layer, tokens and mask to a prefix", async () => {
    const { stepFrame } = await import("../src/views/generation");
    const { FrameCache } = await import("../src/frame");
    const meta = fakeMeta({ tokens: TOKENS, layers: 1, heads: 2, causal: true });
    const layer = fakeSource(meta).peekLayer("self", 0)!;
    const frame = new FrameCache(meta).frame(meta.kinds[0], layer, "all");
    const cut = stepFrame(frame, 3);
    expect(cut.layer.shape).toEqual([2, 3, 3]);
    expect(cut.layer.data[1 * 9 + 2 * 3 + 1]).toBe(layer.data[1 * N * N + 2 * N + 1]);
    expect(cut.queries.text).toEqual(TOKENS.slice(0, 3));
    expect(Array.from(cut.mask!)).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
    expect(stepFrame(frame, 3)).toBe(cut);
    expect(stepFrame(frame, N)).toBe(frame);
  });
});
