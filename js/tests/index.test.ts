// @vitest-environment jsdom
import { describe, expect, it, vi } from "vitest";
import widget, { channelFetchers, exportResponder } from "../src/index";
import type { ExplorerApi } from "../src/render";
import { openChannel } from "../src/rpc";
import { EXPORT_MAX_BYTES, REPLY, REPLY_ERROR, REQUEST_BLOCK, REQUEST_EXPORT, REQUEST_LAYER, REQUEST_TOPK, WIRE_VERSION, type WireRequest } from "../src/wire";
import { FakeModel, flush, randomLayer, testHost } from "./helpers";

const TOKENS = ["[CLS]", "a", "b", "[SEP]"];
const H = 2, L = 3, N = TOKENS.length;

function wireLayer(layer: number, offset = 1) {
  const block = randomLayer("self", layer, H, N, N, null);
  // Unaligned, like a buffer inside a bigger message.
  const buf = new ArrayBuffer(block.data.byteLength + offset);
  new Uint8Array(buf, offset).set(new Uint8Array(block.data.buffer));
  return { block, raw: { kind: "self", layer, dtype: "float32", shape: [H, N, N], data: new DataView(buf, offset, block.data.byteLength) } };
}

function makeModel(overrides: Record<string, unknown> = {}) {
  return new FakeModel({
    _meta: {
      version: WIRE_VERSION, model: "fake/bert", warnings: [],
      sequences: { input: { text: TOKENS, special: [true, false, false, true] } },
      kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "none" }],
    },
    _layers: [wireLayer(0).raw],
    kind: "self", layer: 0, heads: [0, 1], head: -1, aggregate: "mean", token: -1,
    ...overrides,
  });
}

const dom = testHost(() => vi.useRealTimers());

describe("the anywidget entry", () => {
  it("renders the explorer from the model's traits", () => {
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    expect(dom.host.querySelector(".txm-root")!.getAttribute("data-ready")).toBe("1");
    expect(dom.host.querySelectorAll('.txm-token[data-side="query"]')).toHaveLength(N);
  });

  it("sends hover and chip changes to Python", () => {
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    dom.host.querySelector<HTMLElement>('.txm-token[data-side="query"][data-index="2"]')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(model.values.token).toBe(2);
    dom.host.querySelector<HTMLButtonElement>('button.txm-head[data-head="0"]')!.click();
    expect(model.values.heads).toEqual([1]);
    expect(model.saves).toBeGreaterThanOrEqual(2);
  });

  it("fetches a missing layer over custom messages", async () => {
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    model.pythonSets({ layer: 2 });
    expect(model.sent).toEqual([{ type: REQUEST_LAYER, id: expect.stringMatching(/^txm-/), payload: { kind: "self", layer: 2, dtype: "uint8", pool: 1 } }]); // the grid does not ask for more
    expect(dom.host.querySelector(".txm-status")!.textContent).toContain("loading layer 2");
    const { raw } = wireLayer(2, 3);
    const { data, ...content } = raw;
    model.emit("msg:custom", { type: REPLY, id: (model.sent[0] as WireRequest).id, content }, [data]);
    await flush();
    expect(dom.host.querySelector<HTMLElement>('[data-view="matrix"]')!.dataset.drawnLayer).toBe("2");
    expect(dom.host.querySelector<HTMLSelectElement>("select.txm-layer")!.value).toBe("2");
  });

  it("shows Python's error reply in the widget", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    model.pythonSets({ layer: 1 });
    model.emit("msg:custom", { type: REPLY_ERROR, id: (model.sent[0] as WireRequest).id, message: "no such layer" });
    await flush();
    expect(dom.host.querySelector(".txm-error")!.textContent).toContain("Python could not send self layer 1: no such layer");
    logged.mockRestore();
  });

  it("routes block and top-k replies to their requests by id, whatever the order", async () => {
    const model = makeModel();
    const channel = openChannel(model);
    const fetchers = channelFetchers(channel);
    const block = fetchers.block!("self", 0, { q0: 1, q1: 2, k0: 0, k1: 2 });
    const topk = fetchers.topk!("self", 0);
    const [askBlock, askTopK] = model.sent as WireRequest[];
    expect(askBlock).toMatchObject({ type: REQUEST_BLOCK, payload: { kind: "self", layer: 0, q0: 1, q1: 2, k0: 0, k1: 2 } });
    expect(askTopK).toMatchObject({ type: REQUEST_TOPK, payload: { kind: "self", layer: 0 } });
    const index = new Int32Array(H * TOKENS.length).fill(1), weights = new Float32Array(H * TOKENS.length).fill(0.5);
    model.emit("msg:custom", { type: REPLY, id: askTopK.id, content: { kind: "self", layer: 0, dtype: "topk", shape: [H, TOKENS.length, 1] } },
      [new DataView(index.buffer), new DataView(weights.buffer)]);
    const values = new Float32Array(H * 2).fill(0.25);
    model.emit("msg:custom", { type: REPLY, id: askBlock.id, content: { kind: "self", layer: 0, dtype: "float32", shape: [H, 1, 2], pool: 1, q0: 1, k0: 0 } },
      [new DataView(values.buffer)]);
    expect((await topk).index[0]).toBe(1);
    const b = await block;
    expect([b.q0, b.shape[1], b.data[0]]).toEqual([1, 1, 0.25]);
    const failing = fetchers.block!("self", 0, { q0: 0, q1: 1, k0: 0, k1: 2 });
    model.emit("msg:custom", { type: REPLY_ERROR, id: (model.sent[2] as WireRequest).id, message: "too many cells" });
    await expect(failing).rejects.toThrow(/Python could not send self layer 0 cells 0..1 x 0..2: too many cells/);
    channel.dispose();
  });

  it("times out a request that gets no reply", async () => {
    vi.useFakeTimers();
    const model = makeModel();
    const channel = openChannel(model);
    const result = channelFetchers(channel).layer!("self", 1);
    const failed = expect(result).rejects.toThrow(/no reply from Python for self layer 1 after 30 s/);
    vi.advanceTimersByTime(30_001);
    await failed;
    channel.dispose();
  });

  it("shows a version mismatch as an error box, not a blank area", () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const model = makeModel({ _meta: { version: 99 } });
    dom.cleanup = widget.render({ model, el: dom.host });
    const box = dom.host.querySelector(".txm-error");
    expect(box).not.toBeNull();
    expect(box!.textContent).toMatch(/version/);
    expect(dom.host.querySelector(".txm-root")).toBeNull();
    logged.mockRestore();
  });

  it("re-renders when the trace changes", async () => {
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    model.pythonSets({
      _meta: { ...(model.values._meta as object), sequences: { input: { text: ["x", "y", "z", "w"], special: [false, false, false, false] } } },
      _layers: [wireLayer(0).raw],
    });
    await flush();
    expect(dom.host.querySelectorAll(".txm-root")).toHaveLength(1);
    expect(dom.host.querySelector('.txm-token[data-side="query"]')!.textContent).toBe("x");
  });

  it("cleans up: no listeners, no DOM", () => {
    const model = makeModel();
    dom.cleanup = widget.render({ model, el: dom.host });
    dom.cleanup();
    dom.cleanup = null;
    expect(dom.host.childElementCount).toBe(0);
    for (const name of ["change:layer", "msg:custom", "change:_meta"]) expect(model.listeners(name)).toBe(0);
  });
});

describe("answering Python's save_png / save_svg", () => {
  it("answers an export request from the rendered view with the picture's bytes", async () => {
    const model = makeModel({ token: 2 });
    dom.cleanup = widget.render({ model, el: dom.host });
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "abc", payload: { format: "svg" } });
    await flush();
    await flush();
    const at = model.sent.findIndex((m) => (m as { type: string }).type === REPLY);
    expect(model.sent[at]).toEqual({ type: REPLY, id: "abc", content: { format: "svg" } });
    const [bytes] = model.sentBuffers[at] as Uint8Array[];
    expect(new TextDecoder().decode(bytes)).toMatch(/^<svg[\s\S]*fake\/bert/);
  });

  it("refuses what a browser may not send to the kernel, and says why", async () => {
    const model = makeModel();
    const api: ExplorerApi = { exportPicture: async () => new Uint8Array(EXPORT_MAX_BYTES + 1) };
    const channel = openChannel(model);
    const stop = exportResponder(channel, api);
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "big", payload: { format: "png" } });
    await flush();
    expect(model.sent[0]).toMatchObject({ type: REPLY_ERROR, id: "big" });
    expect((model.sent[0] as { message: string }).message).toMatch(/over the 9\.0 MB.*save_svg/);
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "gif", payload: { format: "gif" } });
    await flush();
    expect(model.sent[1]).toMatchObject({ type: REPLY_ERROR, id: "gif", message: expect.stringMatching(/unknown format gif/) });
    stop();
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "late", payload: { format: "png" } });
    await flush();
    expect(model.sent).toHaveLength(2); // no longer answered
    channel.dispose();
    expect(model.listeners("msg:custom")).toBe(0);
  });

  it("passes on the reason a picture could not be made", async () => {
    const model = makeModel();
    exportResponder(openChannel(model), { exportPicture: () => Promise.reject(new Error("no canvas")) });
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "x", payload: { format: "png", scale: 1 } });
    await flush();
    expect(model.sent[0]).toEqual({ type: REPLY_ERROR, id: "x", message: "no canvas" });
  });
});
