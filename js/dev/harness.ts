/**
 * Throw-away visual harness: the explorer over fake attention, no Python, no anywidget.
 * Build: `npm run harness`, then open test-output/harness/index.html (file:// cannot load ES modules, hence iife).
 * Screenshot with Debian chromium --headless --screenshot. URL parameters:
 *   case=bert|gpt|t5|long   dark=1   pin=<query token>   pinkey=<key token>   kind=<k>   layer=<l>
 *   head=<h>   heads=<h,h,...>   n=<tokens for long>   cell=<q>,<k> (tooltip)   bench=1 (timings)
 */

import { renderExplorer } from "../src/render";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore } from "../src/state";
import { decodeMeta, type Meta } from "../src/wire";

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Attention with the usual patterns: previous token, self, first token sink, broad, peaky random. */
function fakeLayer(kind: string, layer: number, heads: number, q: number, k: number, causal: boolean, seed: number): LayerData {
  const next = rng(seed * 1000 + layer * 37 + kind.length);
  const data = new Float32Array(heads * q * k);
  for (let h = 0; h < heads; h++) {
    const pattern = (h + layer) % 5;
    for (let i = 0; i < q; i++) {
      const row = new Float64Array(k);
      for (let j = 0; j < k; j++) {
        if (causal && j > i) continue;
        let logit = next() * 2.5;
        if (pattern === 0 && j === i - 1) logit += 6;
        if (pattern === 1 && j === i) logit += 5;
        if (pattern === 2 && (j === 0 || j === k - 1)) logit += 5;
        if (pattern === 3) logit = next() * 1.2;
        if (pattern === 4 && next() < 0.1) logit += 5;
        row[j] = Math.exp(logit);
      }
      const sum = row.reduce((a, b) => a + b, 0);
      for (let j = 0; j < k; j++) data[(h * q + i) * k + j] = row[j] / sum;
    }
  }
  return { kind, layer, shape: [heads, q, k], data };
}

const BERT = ["[CLS]", "the", "animal", "didn", "'", "t", "cross", "the", "street", "because", "it", "was", "too", "tired", ".", "[SEP]"];
const GPT = ["The", " animal", " didn", "'t", " cross", " the", " street", " because", " it", " was", " too", " tired", "\n", "<img src=x onerror=alert(1)>"];

function scenario(name: string, n: number): { meta: Meta; layers: LayerData[] } {
  const layers: LayerData[] = [];
  if (name === "t5") {
    const src = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat", "</s>"];
    const tgt = ["<pad>", "▁Die", "▁Katze", "▁saß", "▁auf", "▁der", "▁Matte"];
    const meta = decodeMeta({
      version: 1, model: "google-t5/t5-small", warnings: [],
      sequences: { source: { text: src, special: src.map((t) => t === "</s>") }, target: { text: tgt, special: tgt.map((t) => t === "<pad>") } },
      kinds: [
        { name: "encoder", layers: 6, heads: 8, queries: "source", keys: "source", mask: "none" },
        { name: "decoder", layers: 6, heads: 8, queries: "target", keys: "target", mask: "causal" },
        { name: "cross", layers: 6, heads: 8, queries: "target", keys: "source", mask: "none" },
      ],
    });
    for (let l = 0; l < 6; l++) {
      layers.push(fakeLayer("encoder", l, 8, src.length, src.length, false, 1));
      layers.push(fakeLayer("decoder", l, 8, tgt.length, tgt.length, true, 2));
      layers.push(fakeLayer("cross", l, 8, tgt.length, src.length, false, 3));
    }
    return { meta, layers };
  }
  const causal = name === "gpt";
  const text = name === "long" ? Array.from({ length: n }, (_, i) => (i === 0 ? "[CLS]" : `tok${i}`)) : causal ? GPT : BERT;
  const heads = name === "long" ? 12 : 12;
  const L = name === "long" ? 2 : 6;
  const meta = decodeMeta({
    version: 1, model: causal ? "openai-community/gpt2" : name === "long" ? "long/test" : "sentence-transformers/all-MiniLM-L6-v2",
    warnings: name === "bert" ? ["Input was truncated to 16 tokens (the model's limit is 512)."] : [],
    sequences: { input: { text, special: text.map((t) => t.startsWith("[")) } },
    kinds: [{ name: "self", layers: L, heads, queries: "input", keys: "input", mask: causal ? "causal" : "none" }],
  });
  for (let l = 0; l < L; l++) layers.push(fakeLayer("self", l, heads, text.length, text.length, causal, 4));
  return { meta, layers };
}

const params = new URLSearchParams(location.search);
const name = params.get("case") ?? "bert";
const { meta, layers } = scenario(name, Number(params.get("n") ?? 512));
const eager = params.has("bench") ? layers : name === "long" ? layers.slice(0, 1) : layers.slice(0, Math.max(1, layers.length - 2));
const source = new LayerStore(meta, eager, (kind, layer) =>
  new Promise((resolve) => setTimeout(() => resolve(layers.find((b) => b.kind === kind && b.layer === layer)!), 400)));
const first = meta.kinds[0];
const store = new SelectionStore({
  kind: params.get("kind") ?? first.name,
  layer: Number(params.get("layer") ?? 0),
  heads: params.get("heads") ? params.get("heads")!.split(",").map(Number) : Array.from({ length: first.heads }, (_, i) => i),
  head: Number(params.get("head") ?? -1),
  pinned: params.has("pin") ? Number(params.get("pin")) : params.has("pinkey") ? Number(params.get("pinkey")) : -1,
  pinnedSide: params.has("pinkey") ? "key" : "query",
});
const dark = params.get("dark") === "1";
if (dark) document.body.classList.add("dark");
const host = document.getElementById("app")!;
renderExplorer(host, source, store, { dark });
(window as unknown as { txm: unknown }).txm = { store, source };

// Timing: hover redraw cost (reported in the title for headless runs).
if (params.has("bench")) {
  const n = meta.sequences[first.queries].text.length;
  const t0 = performance.now();
  const rounds = 200;
  for (let r = 0; r < rounds; r++) store.set({ hover: (r * 7) % n, hoverSide: "query" });
  const hover = (performance.now() - t0) / rounds;
  const t1 = performance.now();
  store.set({ layer: 1 });
  const layerSwitch = performance.now() - t1;
  const t2 = performance.now();
  store.set({ heads: [0, 1, 2, 3, 4, 5] });
  const headsSwitch = performance.now() - t2;
  document.title = `hover ${hover.toFixed(2)} ms; layer ${layerSwitch.toFixed(1)} ms; heads ${headsSwitch.toFixed(1)} ms`;
  const out = document.createElement("pre");
  out.id = "bench";
  out.textContent = document.title;
  document.body.prepend(out);
}

// Simulate a pointer over a matrix cell (for screenshots of the tooltip): cell=<query>,<key>
if (params.has("cell")) {
  const [q, k] = params.get("cell")!.split(",").map(Number);
  requestAnimationFrame(() => {
    const overlay = document.querySelector<HTMLCanvasElement>('[data-view="matrix"] canvas.txm-matrix-overlay')!;
    const rect = overlay.getBoundingClientRect();
    const n = meta.sequences[first.queries].text.length;
    const cell = rect.width / meta.sequences[first.keys].text.length;
    void n;
    overlay.dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: rect.left + (k + 0.5) * cell, clientY: rect.top + (q + 0.5) * cell }));
  });
}
