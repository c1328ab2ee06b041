/**
 * Throw-away visual harness: the explorer over fake attention, no Python, no anywidget.
 * Build: `npm run harness`, then open test-output/harness/index.html (file:// cannot load ES modules, hence iife).
 * Screenshot with Debian chromium --headless --screenshot. URL parameters:
 *   case=bert|gpt|t5|long|pair|intl|big   dark=1   pin=<query token>   pinkey=<key token>   kind=<k>
 *   layer=<l>   head=<h>   heads=<h,h,...>   n=<tokens for long, big>   L=<layers>   H=<heads> (big)
 *   tab=grid|heads|layers|stats|none   agg=rollout   pair=AB   mask=1   help=1   width=<px>
 *   cell=<q>,<k> (tooltip)   bench=1 (hover timings)   gridbench=1 (overview grid paint timings)
 */

import { renderExplorer, type ExplorerApi, type TabName } from "../src/render";
import { seededRandom } from "../src/sampling";
import { LayerStore, type LayerData } from "../src/source";
import { SelectionStore, type PairFilter } from "../src/state";
import { decodeMeta, type Meta } from "../src/wire";

const params = new URLSearchParams(location.search);

/** Attention with the usual patterns: previous token, self, first token sink, broad, peaky random. */
function fakeLayer(kind: string, layer: number, heads: number, q: number, k: number, causal: boolean, seed: number): LayerData {
  const next = seededRandom(seed * 1000 + layer * 37 + kind.length);
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

const PAIR = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]", "a", "cat", "was", "sitting", "[SEP]"];
const INTL = ["[CLS]", "猫", "が", "座った", "😀", "🐈‍⬛", "שלום", "עולם", "مرحبا", "بالعالم", "<script>", "</script>", "[SEP]"];
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
  const causal = name === "gpt" || name === "big";
  const text = name === "long" || name === "big"
    ? Array.from({ length: n }, (_, i) => (i === 0 ? "[CLS]" : `tok${i % 17}`))
    : causal ? GPT : name === "pair" ? PAIR : name === "intl" ? INTL : BERT;
  const heads = name === "big" ? Number(params.get("H") ?? 9) : 12;
  const L = name === "long" ? 2 : name === "big" ? Number(params.get("L") ?? 30) : 6;
  const segment = name === "pair" ? text.map((_, i) => (i >= 8 ? 1 : 0)) : text.map(() => 0);
  const ids = text.map((t) => Array.from(t).reduce((a, c) => (a * 31 + c.codePointAt(0)!) % 100_003, 7));
  const meta = decodeMeta({
    version: 1,
    model: causal ? (name === "big" ? "HuggingFaceTB/SmolLM2-135M-Instruct" : "openai-community/gpt2") : name === "long" ? "long/test" : "sentence-transformers/all-MiniLM-L6-v2",
    warnings: name === "bert" ? ["Input was truncated to 16 tokens (the model's limit is 512)."] : [],
    sequences: { input: { text, special: text.map((t) => t.startsWith("[")), segment, ids } },
    kinds: [{ name: "self", layers: L, heads, queries: "input", keys: "input", mask: causal ? "causal" : "none" }],
  });
  for (let l = 0; l < L; l++) layers.push(fakeLayer("self", l, heads, text.length, text.length, causal, 4));
  return { meta, layers };
}

const name = params.get("case") ?? "bert";
const { meta, layers } = scenario(name, Number(params.get("n") ?? (name === "big" ? 64 : 512)));
const eager = params.has("bench") || name === "big" ? layers : name === "long" ? layers.slice(0, 1) : layers.slice(0, Math.max(1, layers.length - 2));
const source = new LayerStore(meta, eager, (kind, layer) =>
  new Promise((resolve) => setTimeout(() => resolve(layers.find((b) => b.kind === kind && b.layer === layer)!), 400)));
const first = meta.kinds[0];
const store = new SelectionStore({
  kind: params.get("kind") ?? first.name,
  layer: Number(params.get("layer") ?? 0),
  heads: params.get("heads") ? params.get("heads")!.split(",").map(Number) : Array.from({ length: first.heads }, (_, i) => i),
  head: Number(params.get("head") ?? -1),
  aggregate: params.get("agg") === "rollout" ? "rollout" : "mean",
  pair: (params.get("pair") ?? "all") as PairFilter,
  showMask: params.get("mask") === "1",
  pinned: params.has("pin") ? Number(params.get("pin")) : params.has("pinkey") ? Number(params.get("pinkey")) : -1,
  pinnedSide: params.has("pinkey") ? "key" : "query",
});
const dark = params.get("dark") === "1";
if (dark) document.body.classList.add("dark");
const host = document.getElementById("app")!;
if (params.has("width")) host.style.maxWidth = `${params.get("width")}px`;
let api: ExplorerApi | null = null;
const tab = (params.get("tab") ?? "grid") as TabName | "none";
renderExplorer(host, source, store, { dark, tab, onApi: (a) => (api = a) });
(window as unknown as { txm: unknown }).txm = { store, source, api: () => api };
if (params.get("help") === "1") document.querySelector<HTMLButtonElement>(".txm-help-button")?.click();

// Overview grid paint time (all layers x heads), median of several repaints at this width.
if (params.has("gridbench")) {
  const grid = document.querySelector<HTMLElement>('[data-view="grid"]')!;
  const cold = Number(grid.dataset.paintMs); // first paint: pooling every head + painting
  const times: number[] = [];
  const tab = document.querySelector<HTMLButtonElement>('.txm-tab[data-tab="grid"]')!;
  for (let r = 0; r < 7; r++) {
    tab.click(); // fold
    tab.click(); // open again: a full repaint
    times.push(Number(grid.dataset.paintMs));
  }
  times.sort((a, b) => a - b);
  const out = document.createElement("pre");
  out.id = "gridbench";
  out.textContent = `grid ${meta.kinds[0].layers}x${meta.kinds[0].heads} n=${meta.sequences.input.text.length}: first paint (pool + paint) ${cold.toFixed(1)} ms; repaint median ${times[3].toFixed(1)} ms, max ${times[6].toFixed(1)} ms`;
  document.title = out.textContent;
  document.body.prepend(out);
}

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
