/**
 * The link meter (link.ts) and the fetch policy it drives (prefetch.ts): what a view asks of the
 * kernel on a fast, a slow and an unmeasured link, over a fake channel that records every request.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { channelFetchers } from "../src/index";
import { BANDWIDTH_MIN_BYTES, EWMA_WEIGHT, LinkMeter, replyBytes } from "../src/link";
import { layerBytes, Prefetcher, SPECULATIVE_BYTES, speculate, wantNow, type Want } from "../src/prefetch";
import { openChannel, type Answer, type Channel } from "../src/rpc";
import { LayerStore } from "../src/source";
import { decodeMeta, REPLY, REQUEST_LAYER, WIRE_VERSION, type Meta, type WireLayerRequest, type WireRequest } from "../src/wire";
import { FakeModel, flush } from "./helpers";

afterEach(() => vi.restoreAllMocks());

describe("the link meter", () => {
  it("takes the round trip from small replies and the bandwidth from large ones, less the kernel's time", () => {
    const meter = new LinkMeter();
    expect(meter.fast).toBe(false); // unmeasured is slow
    expect(meter.describe()).toBe("link not measured yet");
    meter.record(200, 120);
    meter.record(300, 154, 50); // 104 ms on the wire
    meter.record(100, 130);
    expect(meter.latency).toBe(104);
    expect(meter.bandwidth).toBeNull();
    // 1.25 MB arriving 1000 ms after the round trip, 30 ms of it computing: 1.25 MB/s = 10 Mbit/s
    meter.record(1_250_000, 104 + 1000 + 30, 30);
    expect(meter.bandwidth).toBeCloseTo(1_250_000, 0);
    expect(meter.fast).toBe(false);
    expect(meter.describe()).toBe("link 10.0 Mbit/s, 104 ms");
    // a 10 MB reply in 104 + 100 ms: 100 MB/s, averaged in with weight EWMA_WEIGHT
    meter.record(10_000_000, 204);
    const expected = EWMA_WEIGHT * 10_000_000 / 0.1 + (1 - EWMA_WEIGHT) * 1_250_000;
    expect(meter.bandwidth! / expected).toBeCloseTo(1, 6);
    expect(meter.bandwidth! * 8).toBeGreaterThanOrEqual(50e6);
    expect(meter.fast).toBe(true);
    expect(meter.count).toBe(5);
  });

  it("counts a reply's JSON content and its buffers", () => {
    const content = { kind: "self", layer: 3 };
    const bytes = replyBytes(content, [new Uint8Array(10), new DataView(new ArrayBuffer(20), 4, 7), new ArrayBuffer(5)]);
    expect(bytes).toBe(JSON.stringify(content).length + 10 + 7 + 5);
  });

  it("times every reply of a channel, less the kernel_ms Python reports", async () => {
    const meter = new LinkMeter();
    const model = new FakeModel({});
    const now = vi.spyOn(performance, "now").mockReturnValueOnce(1000).mockReturnValueOnce(1300);
    const channel = openChannel(model, meter);
    const asked = channel.request(REQUEST_LAYER, { kind: "self", layer: 0 });
    const sent = model.sent[0] as WireRequest;
    const content = { kind: "self", layer: 0, dtype: "uint8", shape: [1, 1, 1], pool: 1, q0: 0, k0: 0 };
    const data = new Uint8Array(BANDWIDTH_MIN_BYTES * 2);
    model.emit("msg:custom", { type: REPLY, id: sent.id, content, kernel_ms: 100 }, [data]);
    await asked;
    expect(now).toHaveBeenCalledTimes(2);
    // 300 ms from request to reply, 100 of them computing: the bytes took 200 ms (no round trip known yet)
    expect(meter.bandwidth).toBeCloseTo((JSON.stringify(content).length + data.byteLength) / 0.2, 3);
    channel.dispose();
  });
});

// -- the fetch policy --------------------------------------------------------------------------------

const N = 1024, H = 12, L = 12;

/** GPT-2 small's shape at `n` tokens (`streamed`: captured reduced at `pool`). */
function bigMeta(n = N, streamed = false, pool = 1): Meta {
  const tokens = Array.from({ length: n }, (_, i) => `t${i}`);
  return decodeMeta({
    version: WIRE_VERSION, model: "gpt2", warnings: [],
    sequences: { input: { text: tokens, special: tokens.map(() => false), segment: tokens.map(() => 0) } },
    kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "causal", streamed, pool }],
  });
}

/** A pooled uint8 overview as the eager payload holds one (zeros: only the shapes matter here). */
function overview(layer: number, pool: number, n = N) {
  const r = Math.ceil(n / pool);
  return { kind: "self", layer, shape: [H, r, r] as [number, number, number], data: new Float32Array(H * r * r), pool, exact: false };
}

/** A channel that records every request and answers a layer request when the test says so. */
class FakeChannel implements Channel {
  readonly asked: WireLayerRequest[] = [];
  private readonly waiting: (() => void)[] = [];
  constructor(readonly meter: LinkMeter) {}
  request(type: string, payload: unknown): Promise<Answer> {
    expect(type).toBe(REQUEST_LAYER);
    const p = payload as WireLayerRequest;
    this.asked.push(p);
    const pool = p.pool ?? 1, r = Math.ceil(N / pool);
    const content = { kind: p.kind, layer: p.layer, dtype: "uint8", shape: [H, r, r], pool, q0: 0, k0: 0 };
    return new Promise((resolve) => this.waiting.push(() => resolve({ content, buffers: [new Uint8Array(H * r * r), new Float32Array(H * r)] })));
  }
  /** Answer the oldest request still waiting. */
  answer(): void {
    this.waiting.shift()?.();
  }
  serve(): () => void {
    return () => {};
  }
  dispose(): void {}
}

function measured(bitsPerS: number): LinkMeter {
  const meter = new LinkMeter();
  meter.record(100, 100);
  meter.record(1_000_000, 100 + (1_000_000 * 8 / bitsPerS) * 1000);
  return meter;
}

function setup(meter: LinkMeter, shown = 5) {
  const channel = new FakeChannel(meter);
  const source = new LayerStore(bigMeta(), [overview(shown, 4)], channelFetchers(channel as unknown as Channel));
  const fetch = (w: Want) => (w.pool === 1 ? source.getLayer(w.kind, w.layer) : source.getOverview(w.kind, w.layer, w.pool));
  return { channel, source, fetch };
}


describe("what is fetched, by link", () => {
  it("a fast link fetches the shown layer at full resolution, then its neighbours one at a time", async () => {
    const meter = measured(1e9);
    expect(meter.fast).toBe(true);
    const { channel, source, fetch } = setup(meter);
    const now = wantNow(source, "self", 5, meter.fast);
    expect(now).toEqual({ kind: "self", layer: 5, pool: 1, bytes: (H * N * (N + 1)) / 2 + H * N * 4 }); // a causal layer crosses lower-triangular
    await Promise.all([fetch(now!), flush().then(() => channel.answer())]);
    expect(source.peekLayer("self", 5)).toBeDefined();
    const prefetch = new Prefetcher(source, meter, fetch);
    prefetch.plan("self", 5);
    expect(channel.asked.slice(1)).toEqual([{ kind: "self", layer: 6, dtype: "uint8", pool: 1 }]); // one at a time
    channel.answer();
    await flush();
    await flush();
    expect(channel.asked.slice(1)).toEqual([
      { kind: "self", layer: 6, dtype: "uint8", pool: 1 }, { kind: "self", layer: 4, dtype: "uint8", pool: 1 }]);
    channel.answer();
    await flush();
    await flush();
    expect(source.peekLayer("self", 6) && source.peekLayer("self", 4)).toBeTruthy(); // a switch hits the cache
    prefetch.plan("self", 5);
    expect(channel.asked).toHaveLength(3); // nothing more
  });

  it("a slow link keeps the overview and guesses only the neighbours' overviews, within 2 MB", async () => {
    const meter = measured(10e6);
    expect(meter.fast).toBe(false);
    const { channel, source, fetch } = setup(meter);
    expect(wantNow(source, "self", 5, meter.fast)).toBeNull(); // the overview draws; zooms fetch exact windows
    const guesses = speculate(source, "self", 5, meter.fast);
    const each = layerBytes(H, N, N, 4, true);
    expect(each).toBe((H * 256 * 257) / 2 + H * 256 * 4);
    expect(guesses).toEqual([{ kind: "self", layer: 6, pool: 4, bytes: each }, { kind: "self", layer: 4, pool: 4, bytes: each }]);
    expect(guesses.reduce((a, w) => a + w.bytes, 0)).toBeLessThanOrEqual(SPECULATIVE_BYTES);
    const prefetch = new Prefetcher(source, meter, fetch);
    prefetch.plan("self", 5);
    expect(channel.asked).toEqual([{ kind: "self", layer: 6, dtype: "uint8", pool: 4 }]);
    // the user moves on while layer 6 comes: what was queued for layer 5 is dropped, and with layer 6's
    // bytes still in flight only what fits the cap is queued for layer 9
    prefetch.plan("self", 9);
    const outstanding = each + prefetch.pending.reduce((a, w) => a + w.bytes, 0);
    expect(outstanding).toBeLessThanOrEqual(SPECULATIVE_BYTES);
    const fit = Math.min(2, Math.floor((SPECULATIVE_BYTES - each) / each)); // lower-triangular overviews: 0.4 MB each
    expect(prefetch.pending.map((w) => w.layer)).toEqual([10, 8].slice(0, fit));
    channel.answer();
    await flush();
    await flush();
    expect(channel.asked.map((p) => [p.layer, p.pool])).toEqual([[6, 4], [10, 4]]);
    expect(source.peekLayer("self", 5)).toBeUndefined(); // never the 12.6 MB layer
  });

  it("a layer with nothing here comes first as an overview of about 1 MB; only a fast link then fetches it whole", () => {
    const meter = measured(10e6);
    const { source } = setup(meter);
    const first = { kind: "self", layer: 2, pool: 4, bytes: layerBytes(H, N, N, 4, true) };
    expect(wantNow(source, "self", 2, meter.fast)).toEqual(first);
    expect(wantNow(source, "self", 2, true)).toEqual(first); // drawn at once on any link
    expect(wantNow(source, "self", 2, true, true)?.pool).toBe(1); // speculation goes straight to the whole layer
    expect(wantNow(source, "self", 5, false)).toBeNull(); // layer 5's overview is here: a slow link keeps it
    expect(wantNow(source, "self", 5, true)).toEqual({ kind: "self", layer: 5, pool: 1, bytes: layerBytes(H, N, N, 1, true) });
  });

  it("an unmeasured link guesses nothing", () => {
    const meter = new LinkMeter();
    const { channel, source, fetch } = setup(meter);
    expect(wantNow(source, "self", 5, meter.fast)).toBeNull();
    new Prefetcher(source, meter, fetch).plan("self", 5);
    expect(channel.asked).toEqual([]);
  });

  it("speculation waits while the user's own fetch is pending", async () => {
    const meter = measured(1e9);
    const { channel, source, fetch } = setup(meter);
    let busy = true;
    const prefetch = new Prefetcher(source, meter, fetch, () => !busy);
    prefetch.plan("self", 5);
    expect(channel.asked).toEqual([]); // nothing goes ahead of the user's request
    busy = false;
    prefetch.pump();
    expect(channel.asked).toHaveLength(1);
  });

  it("a streamed kind's neighbours at its pool are guessed only when they fit the cap on a slow link", () => {
    const n = 4096, pool = 4;
    const source = new LayerStore(bigMeta(n, true, pool), [overview(5, 16, n)], { layer: async () => overview(0, pool, n) });
    const each = layerBytes(H, n, n, pool, true);
    expect(each).toBeGreaterThan(SPECULATIVE_BYTES);
    expect(speculate(source, "self", 5, false)).toEqual([]);
    expect(speculate(source, "self", 5, true).map((w) => [w.layer, w.pool, w.bytes])).toEqual([[6, pool, each], [4, pool, each]]);
  });
});
