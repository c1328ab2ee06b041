// @vitest-environment jsdom
import { WIRE_VERSION } from "../src/wire";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeSelection, HEADER_ID, main, ROOT_ID, traceId } from "../src/report";
import { installFakeCanvas, randomLayer } from "./helpers";

const EVIL = "</script><img src=x onerror=alert(1)>";

function base64(data: Float32Array): string {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The JSON a report holds for one text: its meta and the layers in `layers`. */
function traceJson(tokens: string[], layers: number[], total = 3, heads = 2) {
  const n = tokens.length;
  return {
    meta: {
      version: WIRE_VERSION, model: "fake/model", warnings: [],
      sequences: { input: { text: tokens, special: tokens.map(() => false), segment: tokens.map(() => 0) } },
      kinds: [{ name: "self", layers: total, heads, queries: "input", keys: "input", mask: "none" }],
    },
    layers: layers.map((l) => {
      const block = randomLayer("self", l, heads, n, n, null, 5);
      return { kind: "self", layer: l, dtype: "float32", shape: block.shape, data: base64(block.data) };
    }),
  };
}

function addJson(id: string, value: unknown): void {
  const script = document.createElement("script");
  script.type = "application/json";
  script.id = id;
  script.textContent = JSON.stringify(value);
  document.body.append(script);
}

function page(texts: { tokens: string[]; layers: number[]; label: string }[], selection?: unknown): HTMLElement {
  const root = document.createElement("div");
  root.id = ROOT_ID;
  document.body.append(root);
  addJson(HEADER_ID, {
    title: "A <b>report</b>", generator: "tx_magic test", max_bytes: 1_000_000, selection,
    texts: texts.map((t) => ({
      label: t.label, text: t.tokens.join(" "),
      omitted: [{ kind: "self", layers: [0, 1, 2].filter((l) => !t.layers.includes(l)) }],
    })),
  });
  for (const [i, t] of texts.entries()) addJson(traceId(i), traceJson(t.tokens, t.layers));
  return root;
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

beforeEach(() => installFakeCanvas(true));
afterEach(() => {
  document.body.replaceChildren();
});

describe("report page", () => {
  it("renders the explorer from the inlined data, text as text", () => {
    const root = page([{ tokens: ["a", EVIL, "b"], layers: [0, 1, 2], label: "one" }]);
    main(document);
    expect(root.querySelector(".txm-report-title")!.textContent).toBe("A <b>report</b>");
    expect(root.querySelector(".txm-report-title b")).toBeNull();
    expect(root.querySelector(".txm-text-select")).toBeNull();
    expect(root.querySelector('.txm-root[data-ready="1"]')).not.toBeNull();
    const labels = [...root.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')].map((e) => e.textContent?.trim());
    expect(labels).toContain(EVIL);
    expect(document.querySelector("img")).toBeNull();
  });

  it("switches texts with the selector and keeps the layer", () => {
    const root = page([
      { tokens: ["the", "cat"], layers: [0, 1, 2], label: "first" },
      { tokens: ["a", "dog", "ran"], layers: [0, 1, 2], label: "second" },
    ]);
    main(document);
    const select = root.querySelector<HTMLSelectElement>(".txm-text-select")!;
    expect([...select.options].map((o) => o.textContent)).toEqual(["first", "second"]);
    const layer = root.querySelector<HTMLSelectElement>("select.txm-layer")!;
    layer.value = "2";
    layer.dispatchEvent(new Event("change"));
    select.value = "1";
    select.dispatchEvent(new Event("change"));
    const tokens = [...root.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')].map((e) => e.textContent?.trim());
    expect(tokens).toEqual(["a", "dog", "ran"]);
    expect(root.querySelectorAll(".txm-root")).toHaveLength(1);
    expect(root.querySelector<HTMLSelectElement>("select.txm-layer")!.value).toBe("2");
  });

  it("opens on the header's selection (a drop-in call's layer and heads), ignoring malformed fields", () => {
    const root = page([{ tokens: ["the", "cat", "sat"], layers: [0, 1, 2], label: "one" }], { layer: 2, heads: [1] });
    main(document);
    expect(root.querySelector<HTMLSelectElement>("select.txm-layer")!.value).toBe("2");
    const chips = [...root.querySelectorAll<HTMLElement>("button.txm-head")].map((c) => c.getAttribute("aria-pressed"));
    expect(chips).toEqual(["false", "true"]);
    expect(decodeSelection({ layer: "2", heads: [0, -3], head: 1.5, kind: 4 })).toEqual({});
    expect(decodeSelection({ layer: 1, heads: [0], head: -1, kind: "self" })).toEqual({ layer: 1, heads: [0], head: -1, kind: "self" });
  });

  it("says why a layer left out of the report cannot be shown", async () => {
    const root = page([{ tokens: ["the", "cat"], layers: [0], label: "one" }]);
    main(document);
    const layer = root.querySelector<HTMLSelectElement>("select.txm-layer")!;
    layer.value = "1";
    layer.dispatchEvent(new Event("change"));
    await flush();
    expect(root.querySelector(".txm-error")!.textContent).toContain("left out of this report");
  });

  it("shows an error box when the data is broken", () => {
    const root = page([{ tokens: ["x"], layers: [0], label: "one" }]);
    document.getElementById(traceId(0))!.textContent = "{not json";
    main(document);
    expect(root.querySelector(".txm-error")!.textContent).toContain("not valid JSON");
  });
});
