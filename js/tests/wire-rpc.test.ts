// @vitest-environment jsdom
/**
 * The request channel (rpc.ts) against what Python writes (the wire fixture): each request the
 * renderer sends is the one Python answered, and each of Python's replies, its buffers, its error
 * form and its export request decode to the values Python means.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import { channelFetchers, exportResponder } from "../src/index";
import { decodeInternals, lensFetcher, logitsFetcher } from "../src/internals";
import { openChannel, REQUESTS } from "../src/rpc";
import { decodeMeta, REPLY, REPLY_ERROR, REQUEST_EXPORT, REQUEST_LAYER, type WireRequest } from "../src/wire";
import { FakeModel, flush } from "./helpers";

/** One exchange of the fixture: the renderer's request, Python's reply and buffers, the values they mean. */
interface Message {
  request: { type: string; payload: unknown };
  reply: { type: string; message?: string };
  buffers: string[];
  expected: { values?: (number | null)[]; index?: number[]; ids?: number[] };
}

/** Base64 bytes as a DataView at an odd offset inside a bigger buffer, as hosts hand buffers over. */
function unaligned(b64: string): DataView {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const buf = new ArrayBuffer(bytes.length + 3);
  new Uint8Array(buf, 1).set(bytes);
  return new DataView(buf, 1, bytes.length);
}

function close(got: ArrayLike<number>, want: (number | null)[], tolerance = 0) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (want[i] === null) expect(Number.isNaN(got[i])).toBe(true);
    else expect(Math.abs(got[i] - (want[i] as number))).toBeLessThanOrEqual(tolerance);
  }
}

/** Ask over a fresh channel, check the request is the one in the fixture, answer with Python's reply. */
async function exchange<T>(message: Message, ask: (model: FakeModel) => Promise<T>): Promise<T> {
  const model = new FakeModel({});
  const result = ask(model);
  const sent = model.sent[0] as WireRequest;
  expect({ type: sent.type, payload: sent.payload }).toEqual({ type: message.request.type, payload: message.request.payload });
  model.emit("msg:custom", { ...message.reply, id: sent.id }, message.buffers.map(unaligned));
  return result;
}

describe("Python's replies, as the renderer reads them", () => {
  const m = fixture.messages as Record<string, Message>;

  it("a whole layer (uint8, pooled) and an exact window", async () => {
    const layer = await exchange(m.layer, (model) => channelFetchers(openChannel(model)).layer!("self", 1, { dtype: "uint8", pool: 2 }));
    expect([layer.pool, layer.exact, ...layer.shape]).toEqual([2, false, 2, 3, 3]);
    close(layer.data, m.layer.expected.values!, 1e-6);
    const block = await exchange(m.block, (model) => channelFetchers(openChannel(model)).block!("self", 1, { q0: 1, q1: 4, k0: 0, k1: 3 }));
    expect([block.q0, block.k0, block.exact]).toEqual([1, 0, true]);
    close(block.data, m.block.expected.values!);
  });

  it("top keys, another position's logits and the lens", async () => {
    const topk = await exchange(m.topk, (model) => channelFetchers(openChannel(model)).topk!("self", 0));
    expect(Array.from(topk.index)).toEqual(m.topk.expected.index);
    close(topk.data, m.topk.expected.values!);
    close(await exchange(m.logits, (model) => logitsFetcher(openChannel(model))(2)), m.logits.expected.values!);
    const lens = await exchange(m.lens, (model) => lensFetcher(openChannel(model))([3, 0]));
    expect([lens.positions, lens.k]).toEqual([[3, 0], 5]);
    expect(Array.from(lens.ids)).toEqual(m.lens.expected.ids);
    close(lens.probs, m.lens.expected.values!);
  });

  it("an error reply, with Python's reason and what the view asked for", async () => {
    const failing = exchange(m.error, (model) => channelFetchers(openChannel(model)).layer!("self", 9));
    await expect(failing).rejects.toThrow(`Python could not send self layer 9: ${m.error.reply.message}`);
  });

  it("answers Python's export request in the same envelope", async () => {
    const model = new FakeModel({});
    const png = new Uint8Array([137, 80, 78, 71]);
    const api = { exportPicture: vi.fn(async () => png) };
    exportResponder(openChannel(model), api);
    model.emit("msg:custom", fixture.export_request);
    await flush();
    expect(api.exportPicture).toHaveBeenCalledWith("png", fixture.export_request.payload.scale);
    expect(model.sent).toEqual([{ type: REPLY, id: fixture.export_request.id, content: { format: "png" } }]);
    expect(model.sentBuffers[0]).toEqual([png]);
  });
});

describe("the traits Python writes", () => {
  it("model internals: hidden states, the lens's shape, logits, vocabulary, generation", () => {
    const x = decodeInternals(fixture.internals.raw)!;
    close(x.hidden!.norms, fixture.internals.expected.norms);
    close(x.hidden!.cosines, fixture.internals.expected.cosines);
    expect([x.hidden!.layers, x.hidden!.tokens, x.hidden!.lastNormed]).toEqual([2, 5, false]);
    expect([x.lens!.layers, x.lens!.tokens, x.lens!.k]).toEqual([2, 5, 5]);
    close(x.logits!.peek(4)!, fixture.internals.expected.logits);
    expect(x.vocab).toContain("<b>bold</b>");
    expect(x.generation).toEqual({ prompt: 3, steps: 2, sample: false });
  });

  it("a vision model's picture", () => {
    const meta = decodeMeta(fixture.vision.meta);
    expect(Array.from(meta.image!.png)).toEqual(fixture.vision.expected_png);
    expect(meta.image).toMatchObject({ width: 4, height: 4, rows: 2, cols: 2, sequence: "input", first: 1 });
  });
});

describe("the channel", () => {
  afterEach(() => vi.useRealTimers());

  it("routes replies by id, whatever their order, and only to the view that asked", async () => {
    const model = new FakeModel({});
    const mine = openChannel(model), theirs = openChannel(model);
    const a = mine.request(REQUEST_LAYER, { kind: "self", layer: 0 });
    const b = mine.request(REQUEST_LAYER, { kind: "self", layer: 1 });
    const other = theirs.request(REQUEST_LAYER, { kind: "self", layer: 0 });
    const [ida, idb, idother] = (model.sent as WireRequest[]).map((s) => s.id);
    expect(new Set([ida, idb, idother]).size).toBe(3);
    model.emit("msg:custom", { type: REPLY, id: idb, content: { n: 2 } }, []);
    model.emit("msg:custom", { type: REPLY, id: ida, content: { n: 1 } }, []);
    expect((await a).content).toEqual({ n: 1 });
    expect((await b).content).toEqual({ n: 2 });
    model.emit("msg:custom", { type: REPLY_ERROR, id: idother, message: "no" });
    await expect(other).rejects.toThrow("Python could not send self layer 0: no");
  });

  it("refuses a reply it cannot read, times out, and cancels on dispose", async () => {
    vi.useFakeTimers();
    const model = new FakeModel({});
    const channel = openChannel(model);
    const odd = channel.request(REQUEST_LAYER, { kind: "self", layer: 4 });
    model.emit("msg:custom", { type: "layer", id: (model.sent[0] as WireRequest).id, dtype: "float32" });
    await expect(odd).rejects.toThrow(/could not read Python's reply for self layer 4 \(type layer\)/);
    const slow = channel.request(REQUEST_LAYER, { kind: "self", layer: 2 });
    const failed = expect(slow).rejects.toThrow(/no reply from Python for self layer 2 after 30 s: is the kernel busy/);
    vi.advanceTimersByTime(REQUESTS[REQUEST_LAYER].timeoutMs + 1);
    await failed;
    const lens = lensFetcher(channel)([1]), late = lensFetcher(channel, 1000)([2]);
    const gaveUp = expect(late).rejects.toThrow(/^no reply from Python for the logit lens after 1 s/);
    vi.advanceTimersByTime(REQUESTS.get_lens.timeoutMs - 1); // the lens waits longer: 60 s
    await gaveUp;
    channel.dispose();
    await expect(lens).rejects.toThrow("request for the logit lens cancelled: the view was closed");
    expect(model.listeners("msg:custom")).toBe(0);
  });

  it("tells Python why it cannot answer, and a failed send fails the request", async () => {
    const model = new FakeModel({});
    const channel = openChannel(model);
    channel.serve(REQUEST_EXPORT, async () => {
      throw new Error("no canvas");
    });
    model.emit("msg:custom", { type: REQUEST_EXPORT, id: "e", payload: {} });
    await flush();
    expect(model.sent).toEqual([{ type: REPLY_ERROR, id: "e", message: "no canvas" }]);
    model.send = () => {
      throw new Error("comm closed");
    };
    await expect(channel.request(REQUEST_LAYER, { kind: "self", layer: 0 })).rejects.toThrow("comm closed");
  });
});
