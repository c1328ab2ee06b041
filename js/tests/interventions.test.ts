// @vitest-environment jsdom
/**
 * Interventions in the renderer: what Python writes (the wire fixture) decodes; modifier-clicks on head
 * chips, overview and Effects cells and matrix cells send the right rerun requests; the banner, the
 * Effects tab and the Next token tab's before and after show what they should.
 */
import { describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import { decodeInternals } from "../src/internals";
import { Interventions, interventionOf, rerunsOf, type RerunSender } from "../src/interventions";
import { decodePatching, divergingColor, type Patching } from "../src/patching";
import { renderExplorer } from "../src/render";
import { SelectionStore } from "../src/state";
import { KEYS } from "../src/keyboard";
import { topSites } from "../src/views/effects";
import { compareRows } from "../src/views/next-compare";
import {
  ABLATE_REQUEST_FIELDS, BASELINE_FIELDS, EDIT_REQUEST_FIELDS, HEAD_REF_FIELDS, INTERVENTION_FIELDS, PATCHING_FIELDS, PATCHING_RESULT_FIELDS,
  REQUEST_ABLATE, REQUEST_EDIT, REQUEST_FIELDS, REQUEST_RESTORE, RERUNS_FIELDS, RESTORE_REQUEST_FIELDS, WEIGHT_EDIT_FIELDS,
  decodeMeta, type Meta,
} from "../src/wire";
import { fakeMeta, fakeSource, flush, testHost } from "./helpers";

const data = fixture.interventions;

function conforms(value: unknown, fields: Record<string, string>, where: string): Record<string, unknown> {
  const keys = Object.keys(value as object);
  expect(keys.filter((k) => !(k in fields)), `${where}: keys not declared`).toEqual([]);
  expect(Object.keys(fields).filter((k) => fields[k] === "required" && !keys.includes(k)), `${where}: missing`).toEqual([]);
  return value as Record<string, unknown>;
}

const near = (got: ArrayLike<number>, want: (number | null)[]) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => {
    expect(got[i]).toBeCloseTo(w as number, 6);
  });
};

describe("what Python writes", () => {
  it("decodes the intervention, the reruns' baseline and the patching effects", () => {
    const meta = decodeMeta(data.meta);
    const info = interventionOf(meta)!;
    conforms(data.meta.intervention, INTERVENTION_FIELDS, "intervention");
    for (const h of data.meta.intervention.ablate) conforms(h, HEAD_REF_FIELDS, "head");
    for (const e of data.meta.intervention.edit) conforms(e, WEIGHT_EDIT_FIELDS, "edit");
    expect(info.label).toBe("ablated (mean): L0H1, L1H0 · edited: L1H1 3→1 = 0.25");
    expect(info.ablate).toEqual([{ kind: "self", layer: 0, head: 1 }, { kind: "self", layer: 1, head: 0 }]);
    conforms(conforms(data.reruns, RERUNS_FIELDS, "reruns").baseline, BASELINE_FIELDS, "baseline");
    const reruns = rerunsOf(data.reruns)!;
    expect(reruns.ablation).toBe("mean");
    near(reruns.baseline!.logits, data.expected_baseline);
    expect(rerunsOf({})).toBeNull();
    conforms(data.patching, PATCHING_FIELDS, "patching");
    for (const r of data.patching.results) conforms(r, PATCHING_RESULT_FIELDS, "patching result");
    const p = decodePatching(data.patching)!;
    expect([p.by, p.rows, p.cols, p.columns, p.corrupted]).toEqual(["head", 2, 3, ["0", "1", "2"], ["a", "<c>"]]);
    near(p.results[0].effects, data.expected_patching.exact.effects);
    near(p.results[1].raw, data.expected_patching.gradient.raw);
    expect(p.correlation).toBe(1);
    expect(decodePatching({})).toBeNull();
  });

  it("sends rerun requests Python reads as the fixture says", () => {
    const fields = { [REQUEST_ABLATE]: ABLATE_REQUEST_FIELDS, [REQUEST_EDIT]: EDIT_REQUEST_FIELDS, [REQUEST_RESTORE]: RESTORE_REQUEST_FIELDS };
    for (const [name, r] of Object.entries(data.requests)) {
      conforms(r, { ...REQUEST_FIELDS, asks: "required" }, name);
      conforms(r.payload, fields[r.type as keyof typeof fields], `${name} payload`);
    }
    expect(data.requests.ablate.asks).toBe("ablated: L1H2 · edited: L1H1 3→1 = 0.25"); // edits are kept
    expect(data.requests.edit.asks).toBe("ablated (mean): L0H1, L1H0 · edited: L0H0 2→0 = 0"); // ablations are kept
  });
});

function intervened(meta: Meta, ablate: { layer: number; head: number }[]): Meta {
  return { ...meta, intervention: { label: `ablated: ${ablate.map((h) => `L${h.layer}H${h.head}`).join(", ")}`, ablation: "zero", ablate: ablate.map((h) => ({ kind: "self", ...h })), edit: [] } };
}

describe("Interventions", () => {
  it("toggles heads, switches the ablation, edits one cell at a time and restores", async () => {
    const sent: [string, unknown][] = [];
    const send: RerunSender = async (type, payload) => {
      sent.push([type, payload]);
    };
    const meta = intervened(fakeMeta({ layers: 2, heads: 3 }), [{ layer: 1, head: 2 }]);
    const iv = new Interventions(meta, { ablation: "zero" }, send, (err) => {
      throw err;
    });
    expect(iv.live && iv.isAblated("self", 1, 2) && !iv.isAblated("self", 1, 1)).toBe(true);
    expect(iv.ablatedKeys("self", 3)).toEqual([5]);
    iv.toggle("self", 0, 1);
    iv.toggle("self", 1, 2);
    iv.setAblation("mean");
    iv.edit({ kind: "self", layer: 0, head: 0, query: 3, key: 1, weight: 0 });
    iv.restore();
    await flush();
    expect(sent).toEqual([
      [REQUEST_ABLATE, { heads: [{ kind: "self", layer: 1, head: 2 }, { kind: "self", layer: 0, head: 1 }], ablation: "zero" }],
      [REQUEST_ABLATE, { heads: [], ablation: "zero" }],
      [REQUEST_ABLATE, { heads: [{ kind: "self", layer: 1, head: 2 }], ablation: "mean" }],
      [REQUEST_EDIT, { edits: [{ kind: "self", layer: 0, head: 0, query: 3, key: 1, weight: 0 }] }],
      [REQUEST_RESTORE, {}],
    ]);
  });

  it("is busy while Python works, reports failures, and takes a replaced view's cancellation quietly", async () => {
    const reported: unknown[] = [];
    let fail = (_: Error) => {};
    const send: RerunSender = () => new Promise((_, reject) => {
      fail = reject;
    });
    const iv = new Interventions(fakeMeta({ layers: 1, heads: 2 }), { ablation: "zero" }, send, (err) => reported.push(err));
    const busy: boolean[] = [];
    iv.onBusy((b) => busy.push(b));
    iv.toggle("self", 0, 0);
    expect(iv.busy).toBe(true);
    fail(new Error("Python could not rerun the model: head (0, 9) is out of range"));
    await flush();
    iv.toggle("self", 0, 1);
    fail(new Error("request for with L0H1 ablated cancelled: the view was closed"));
    await flush();
    expect(busy).toEqual([true, false, true, false]);
    expect(reported.map(String)).toEqual(["Error: Python could not rerun the model: head (0, 9) is out of range"]);
    const dead = new Interventions(fakeMeta({ layers: 1, heads: 2 }), {}, null, (err) => reported.push(err));
    dead.toggle("self", 0, 0);
    expect(dead.live).toBe(false);
    expect(String(reported[1])).toMatch(/cannot rerun the model/);
  });
});

describe("next-token before and after", () => {
  it("compares exact softmax probabilities and logits of the top tokens of either run", () => {
    const before = Float32Array.from([2, 1, 0, -1, 5]);
    const after = Float32Array.from([2, 3, 0, -1, 1]);
    const rows = compareRows(before, after, 2);
    const soft = (x: Float32Array) => {
      const m = Math.max(...x), e = Array.from(x, (v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const pb = soft(before), pa = soft(after);
    expect(rows.map((r) => r.id)).toEqual([1, 0, 4]); // top 2 after (1, 0), then top 2 before (4, 0)
    for (const r of rows) {
      expect(r.before).toBeCloseTo(pb[r.id], 12);
      expect(r.after).toBeCloseTo(pa[r.id], 12);
      expect(r.delta).toBeCloseTo(pa[r.id] - pb[r.id], 12);
      expect(r.logitDelta).toBe(after[r.id] - before[r.id]);
    }
  });
});

describe("effects", () => {
  it("lists the largest effects and colours them on a diverging scale", () => {
    const p = decodePatching(data.patching)!;
    expect(topSites(p.results[0], p.cols, 3).map(([r, c]) => `${r},${c}`)).toEqual(["0,2", "1,0", "0,0"]);
    expect(divergingColor(0, false)).toBe("rgb(255, 255, 255)");
    expect(divergingColor(1, false)).toBe("rgb(202, 0, 32)");
    expect(divergingColor(-5, false)).toBe("rgb(5, 113, 176)");
  });
});

const dom = testHost();
const TOKENS = ["When", " Mary", " and", " John", " gave", " to"];
const VOCAB = [" Mary", " John", " the", " a"];
const bytes = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

function patching(): Patching {
  const effects = Float32Array.from([0.1, -0.4, 0.9, 0.0, 0.2, -0.1]);
  return {
    by: "head", kind: "self", metric: "logit(' Mary') - logit(' John')", metricClean: 3, metricCorrupt: -2, rows: 2, cols: 3,
    columns: ["0", "1", "2"], corrupted: TOKENS, correlation: 0.8,
    results: [{ method: "exact", effects, raw: effects.map((e) => -2 + 5 * e), seconds: 2 },
      { method: "gradient", effects: effects.map((e) => e * 0.8), raw: effects, seconds: 0.1 }],
  };
}

function mount(opts: { ablate?: { layer: number; head: number }[]; live?: boolean } = {}) {
  const base = fakeMeta({ tokens: TOKENS, layers: 2, heads: 3, causal: true });
  const meta = opts.ablate ? intervened(base, opts.ablate) : base;
  const source = fakeSource(meta);
  const store = new SelectionStore({ kind: "self", layer: 0, heads: [0, 1, 2], head: -1 });
  const send = vi.fn<RerunSender>(async () => undefined);
  const internals = decodeInternals({ logits: { position: 5, data: bytes([1, 2, 0, 0]) }, vocab: VOCAB });
  const reruns = opts.live === false ? null : { state: { ablation: "zero", ...(opts.ablate ? { baseline: { position: 5, data: bytes([3, 0, 0, 0]) } } : {}) }, send };
  dom.cleanup = renderExplorer(dom.host, source, store, { dark: false, internals, patching: patching(), reruns, tab: "effects" });
  const root = dom.host.querySelector<HTMLElement>(".txm-root")!;
  const click = (el: Element, init: MouseEventInit = {}) => el.dispatchEvent(new MouseEvent("click", { bubbles: true, ...init }));
  return { root, store, send, click };
}

describe("the explorer with interventions", () => {
  it("shows the ablated run's banner and restores in one click", async () => {
    const { root, send, click } = mount({ ablate: [{ layer: 0, head: 2 }] });
    const banner = root.querySelector<HTMLElement>(".txm-intervention")!;
    expect(banner.hidden).toBe(false);
    expect(banner.querySelector(".txm-intervention-label")!.textContent).toBe("ablated: L0H2");
    click(banner.querySelector(".txm-restore")!);
    await flush();
    expect(send).toHaveBeenCalledWith(REQUEST_RESTORE, {});
    const chip = root.querySelector<HTMLElement>('.txm-head[data-head="2"]')!;
    expect(chip.classList.contains("txm-ablated")).toBe(true);
    expect(root.querySelector('.txm-head[data-head="1"]')!.classList.contains("txm-ablated")).toBe(false);
  });

  it("hides the banner for the model's own run and says when no kernel can rerun", () => {
    const own = mount();
    expect(own.root.querySelector<HTMLElement>(".txm-intervention")!.hidden).toBe(true);
    dom.cleanup?.();
    const report = mount({ ablate: [{ layer: 1, head: 0 }], live: false });
    const banner = report.root.querySelector<HTMLElement>(".txm-intervention")!;
    expect(banner.hidden).toBe(false);
    expect(banner.querySelector(".txm-restore")).toBeNull();
    expect(banner.textContent).toMatch(/no kernel here/);
  });

  it("Alt-click on a head chip ablates it; shift-click still solos", async () => {
    const { root, store, send, click } = mount();
    const chip = root.querySelector<HTMLElement>('.txm-head[data-head="1"]')!;
    click(chip, { altKey: true });
    click(chip, { metaKey: true });
    await flush();
    expect(send.mock.calls).toEqual([
      [REQUEST_ABLATE, { heads: [{ kind: "self", layer: 0, head: 1 }], ablation: "zero" }],
      [REQUEST_ABLATE, { heads: [{ kind: "self", layer: 0, head: 1 }], ablation: "zero" }],
    ]);
    expect(store.get().heads).toEqual([0, 1, 2]);
    click(chip, { shiftKey: true });
    expect(store.get().heads).toEqual([1]);
    expect(KEYS.some(([keys, what]) => keys.startsWith("Alt-click") && /ablate/.test(what))).toBe(true);
  });

  it("draws the Effects tab: both methods, the correlation, hover values; click selects, Alt-click ablates", async () => {
    const { root, store, send, click } = mount({ ablate: [{ layer: 0, head: 2 }] });
    const view = root.querySelector<HTMLElement>('[data-view="effects"]')!;
    expect(view.hidden).toBe(false);
    const maps = view.querySelectorAll(".txm-effects-map");
    expect(Array.from(maps, (m) => (m as HTMLElement).dataset.method)).toEqual(["exact", "gradient"]);
    expect(view.querySelectorAll(".txm-effect-cell").length).toBe(12);
    expect(view.textContent).toContain("rank correlation (Spearman) of exact and gradient: 0.800");
    const cell = maps[0].querySelector<HTMLElement>('[data-row="1"][data-col="1"]')!;
    expect(cell.title).toBe("L1H1 · effect +0.200 · logit(' Mary') - logit(' John') -1.0000 (exact)");
    cell.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(view.querySelector(".txm-effects-readout")!.textContent).toContain("L1H1: exact +0.200");
    click(cell);
    expect([store.get().layer, store.get().head]).toEqual([1, 1]);
    expect(cell.classList.contains("txm-selected")).toBe(true);
    expect(maps[0].querySelector('[data-row="0"][data-col="2"]')!.classList.contains("txm-ablated")).toBe(true);
    click(cell, { altKey: true });
    await flush();
    expect(send).toHaveBeenLastCalledWith(REQUEST_ABLATE, { heads: [{ kind: "self", layer: 0, head: 2 }, { kind: "self", layer: 1, head: 1 }], ablation: "zero" });
    const top = view.querySelector<HTMLElement>(".txm-effects-site")!;
    expect(top.textContent).toBe("L0H2 +0.90");
  });

  it("shows next-token probabilities before and after the ablation", () => {
    const { root } = mount({ ablate: [{ layer: 0, head: 2 }] });
    root.querySelector<HTMLButtonElement>('.txm-tab[data-tab="next"]')!.click();
    const table = root.querySelector<HTMLElement>(".txm-next-compare")!;
    expect(table.textContent).toContain("before → after ablated: L0H2");
    const first = table.querySelector<HTMLElement>("tr[data-id]")!;
    expect(first.dataset.id).toBe("1"); // " John": logit 2 after, the likeliest
    const cells = Array.from(first.querySelectorAll("td"), (td) => td.textContent);
    const soft = (x: number[]) => x.map((v) => Math.exp(v) / x.reduce((a, b) => a + Math.exp(b), 0));
    expect(cells).toEqual(["␣John", `${(soft([3, 0, 0, 0])[1] * 100).toFixed(1)}%`, `${(soft([1, 2, 0, 0])[1] * 100).toFixed(1)}%`,
      `+${((soft([1, 2, 0, 0])[1] - soft([3, 0, 0, 0])[1]) * 100).toFixed(1)} pp`, "+2.00"]);
  });

  it("Alt-click on a matrix cell of one head opens the weight editor; block key sends the edit", async () => {
    const { root, store, send } = mount();
    store.set({ head: 1 });
    const overlay = root.querySelector<HTMLCanvasElement>(".txm-matrix-overlay")!;
    overlay.getBoundingClientRect = () => ({ left: 0, top: 0, right: 600, bottom: 600, width: 600, height: 600, x: 0, y: 0, toJSON: () => ({}) });
    overlay.dispatchEvent(new MouseEvent("click", { bubbles: true, altKey: true, clientX: 1, clientY: 1 }));
    const editor = root.querySelector<HTMLElement>(".txm-weight-editor")!;
    expect(editor.hidden).toBe(false);
    editor.querySelector<HTMLButtonElement>(".txm-weight-block")!.click();
    await flush();
    expect(send).toHaveBeenCalledWith(REQUEST_EDIT, { edits: [{ kind: "self", layer: 0, head: 1, query: 0, key: 0, weight: 0 }] });
    expect(editor.hidden).toBe(true);
  });
});

describe("a saved report", () => {
  it("shows the intervention (without a restore: no kernel) and opens on the Effects tab", async () => {
    const { HEADER_ID, main, ROOT_ID, traceId } = await import("../src/report");
    const { randomLayer } = await import("./helpers");
    const b64 = (x: Float32Array) => btoa(String.fromCharCode(...new Uint8Array(x.buffer)));
    const root = document.createElement("div");
    root.id = ROOT_ID;
    document.body.append(root);
    const add = (id: string, value: unknown) => {
      const s = document.createElement("script");
      s.type = "application/json";
      s.id = id;
      s.textContent = JSON.stringify(value);
      document.body.append(s);
    };
    add(HEADER_ID, { title: "patched", generator: "test", max_bytes: 1e6, texts: [{ label: "t", text: "t", omitted: [] }] });
    const layers = [0, 1].map((l) => {
      const block = randomLayer("self", l, 2, 5, 5, null, 3);
      return { kind: "self", layer: l, dtype: "float32", shape: block.shape, data: b64(block.data) };
    });
    add(traceId(0), { meta: data.meta, layers, patching: data.patching });
    main(document);
    const effects = root.querySelector<HTMLElement>('[data-view="effects"]')!;
    expect(effects.hidden).toBe(false);
    expect(effects.querySelectorAll(".txm-effect-cell").length).toBe(12);
    const banner = root.querySelector<HTMLElement>(".txm-intervention")!;
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("ablated (mean): L0H1, L1H0 · edited: L1H1 3→1 = 0.25");
    expect(banner.querySelector(".txm-restore")).toBeNull();
    root.remove();
    document.body.replaceChildren();
  });
});
