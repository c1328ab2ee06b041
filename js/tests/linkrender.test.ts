// @vitest-environment jsdom
/**
 * The explorer over a layer too large to send whole (12 heads x 320 tokens: 1.2 MB as 8-bit), on a
 * fast and a slow link (render.ts with prefetch.ts): what it asks the kernel for after the first view.
 */
import { describe, expect, it, vi } from "vitest";
import { LinkMeter } from "../src/link";
import { renderExplorer } from "../src/render";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore } from "../src/state";
import { decodeMeta, WIRE_VERSION, type TopKBlock } from "../src/wire";
import { deferred, flush, randomLayer, testHost } from "./helpers";

const dom = testHost();
const N = 320, H = 12, L = 4, POOL = 4;

function pooled(exact: LayerData, pool = POOL): LayerData {
  const r = Math.ceil(N / pool);
  const data = new Float32Array(H * r * r);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        const at = (h * r + Math.floor(i / pool)) * r + Math.floor(j / pool);
        data[at] = Math.max(data[at], exact.data[(h * N + i) * N + j]);
      }
    }
  }
  return { kind: "self", layer: exact.layer, shape: [H, r, r], data, pool, exact: false };
}

function mount(meter: LinkMeter, block?: () => Promise<LayerData>) {
  const tokens = Array.from({ length: N }, (_, i) => `t${i}`);
  const meta = decodeMeta({
    version: WIRE_VERSION, model: "m", warnings: [],
    sequences: { input: { text: tokens, special: tokens.map(() => false), segment: tokens.map(() => 0) } },
    kinds: [{ name: "self", layers: L, heads: H, queries: "input", keys: "input", mask: "none" }],
  });
  const exact = Array.from({ length: L }, (_, l) => randomLayer("self", l, H, N, N, null, 2));
  const topk = (_k: string, l: number): Promise<TopKBlock> =>
    Promise.resolve({ kind: "self", layer: l, shape: [H, N, 1], index: new Int32Array(H * N), data: new Float32Array(H * N) });
  const fetchers = {
    layer: vi.fn((_k: string, l: number, want?: { pool: number }) => Promise.resolve((want?.pool ?? 1) > 1 ? pooled(exact[l], want!.pool) : exact[l])),
    topk: vi.fn(topk),
    block: block ? vi.fn(block) : undefined,
  };
  const source = new LayerStore(meta, [pooled(exact[1])], fetchers);
  const store = new SelectionStore({ kind: "self", layer: 1, heads: Array.from({ length: H }, (_, h) => h), head: -1 });
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, link: meter });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  return { fetchers, root, source, store };
}

function measured(bitsPerS: number): LinkMeter {
  const meter = new LinkMeter();
  meter.record(100, 100);
  meter.record(1_000_000, 100 + (1_000_000 * 8 / bitsPerS) * 1000);
  return meter;
}

async function settle() {
  for (let i = 0; i < 6; i++) await flush();
}

describe("the explorer on a measured link", () => {
  it("fast: the shown layer whole after the first view, then its neighbours, so a switch is drawn from the cache", async () => {
    const { fetchers, root, source, store } = mount(measured(1e9));
    expect(root.dataset.ready).toBe("1"); // drawn from the overview first
    await settle();
    expect(fetchers.layer.mock.calls.map((c) => [c[1], c[2]?.pool])).toEqual([[1, 1], [2, 1], [0, 1]]);
    expect(source.peekLayer("self", 2)).toBeDefined();
    store.set({ layer: 2 });
    const matrix = root.querySelector<HTMLElement>('[data-view="matrix"]')!;
    expect(matrix.dataset.drawnLayer).toBe("2");
    expect(matrix.dataset.pool).toBe("1");
    expect(root.dataset.link).toBe("link 1.0 Gbit/s, 100 ms");
    expect(root.querySelector<HTMLElement>(".txm-status")!.title).toBe("link 1.0 Gbit/s, 100 ms");
  });

  it("guesses wait while a window the user zoomed into is still coming", async () => {
    const pending = deferred<LayerData>();
    const { fetchers, source, store } = mount(measured(1e9), () => pending.promise);
    const zoom = source.getBlock("self", 1, { q0: 0, q1: 8, k0: 0, k1: 8 });
    await settle();
    expect(fetchers.layer.mock.calls.map((c) => c[1])).toEqual([1]); // the shown layer, no guess yet
    const exact = randomLayer("self", 1, H, N, N, null, 2);
    pending.resolve({ kind: "self", layer: 1, shape: [H, 8, 8], data: exact.data.slice(0, H * 64), pool: 1, q0: 0, k0: 0 });
    await zoom;
    store.set({ hover: 3 }); // the next redraw resumes them
    await settle();
    expect(fetchers.layer.mock.calls.map((c) => c[1])).toEqual([1, 2, 0]);
  });

  it("slow: the overview stays, and only neighbours' overviews (under 2 MB) are guessed", async () => {
    const { fetchers, root } = mount(measured(10e6));
    await settle();
    const calls = fetchers.layer.mock.calls.map((c) => [c[1], c[2]?.pool]);
    // the finest overview within 1 MiB: pool 2 (12 x 160 x 160 + scales = 315 KB; both under 2 MB)
    expect(calls).toEqual([[2, 2], [0, 2]]);
    expect(root.querySelector<HTMLElement>('[data-view="matrix"]')!.dataset.pool).toBe(String(POOL));
    expect(root.querySelector(".txm-status")!.textContent).not.toContain("loading full layer");
  });

  it("unmeasured: nothing beyond what the first view shows", async () => {
    const { fetchers } = mount(new LinkMeter());
    await settle();
    expect(fetchers.layer).not.toHaveBeenCalled();
    expect(fetchers.topk).toHaveBeenCalledTimes(1); // the arcs of a pooled layer need its top keys
  });
});
