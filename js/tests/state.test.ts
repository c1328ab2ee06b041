import { describe, expect, it, vi } from "vitest";
import { corrections, focusedQuery, focusOf, sanitize, SelectionStore } from "../src/state";
import { bindModel, selectionFromModel } from "../src/sync";
import { decodeMeta, WIRE_VERSION } from "../src/wire";
import { FakeModel, fakeMeta } from "./helpers";

describe("SelectionStore", () => {
  it("notifies with the changed keys only when values change", () => {
    const store = new SelectionStore({ kind: "self", heads: [0, 1] });
    const seen: string[][] = [];
    store.subscribe((_s, changed) => seen.push([...changed].sort()));
    store.set({ layer: 2 });
    store.set({ layer: 2 });
    store.set({ heads: [0, 1] });
    store.set({ heads: [1], hover: 3 });
    expect(seen).toEqual([["layer"], ["heads", "hover"]]);
    expect(store.get().heads).toEqual([1]);
  });

  it("derives the focused token: hover, else pinned", () => {
    const store = new SelectionStore({ kind: "self" });
    expect(store.token).toBe(-1);
    store.set({ pinned: 4 });
    expect(store.token).toBe(4);
    store.set({ hover: 2, hoverSide: "key" });
    expect(store.token).toBe(2);
    expect(focusOf(store.get())).toEqual({ index: 2, side: "key" });
    store.set({ hover: -1 });
    expect(store.focus).toEqual({ index: 4, side: "query" });
  });

  it("copies arrays so callers cannot mutate the state", () => {
    const heads = [0, 1];
    const store = new SelectionStore({ heads });
    heads.push(2);
    expect(store.get().heads).toEqual([0, 1]);
  });

  it("unsubscribes, and routes listener errors to the handler", () => {
    const onError = vi.fn();
    const store = new SelectionStore({}, onError);
    const fn = vi.fn();
    const off = store.subscribe(fn);
    store.subscribe(() => {
      throw new Error("boom");
    });
    store.set({ layer: 1 });
    off();
    store.set({ layer: 2 });
    expect(fn).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledTimes(2);
  });
});

describe("sanitize", () => {
  const meta = fakeMeta({ layers: 4, heads: 3 });

  it("clamps everything into the trace", () => {
    const s = sanitize(meta, {
      kind: "nope", layer: 9, heads: [2, 0, 5, 0], head: 7, aggregate: "rollout", pair: "AB", showMask: true,
      weighting: "value", hover: 99, hoverSide: "query", pinned: 1, pinnedSide: "key",
    });
    expect(s).toEqual({
      kind: "self", layer: 3, heads: [0, 2], head: -1, aggregate: "rollout", pair: "all", showMask: true,
      weighting: "raw", hover: -1, hoverSide: "query", pinned: 1, pinnedSide: "key",
    });
  });

  it("reports no corrections for a valid selection", () => {
    const store = new SelectionStore({ kind: "self", heads: [0, 1, 2], layer: 1 });
    expect(corrections(meta, store.get())).toEqual({});
    expect(corrections(meta, { ...store.get(), layer: -3 })).toEqual({ layer: 0 });
  });
});

describe("focusedQuery", () => {
  const cross = decodeMeta({
    version: WIRE_VERSION, model: "m", warnings: [],
    sequences: { source: { text: ["a", "b", "c"], special: [false, false, false] }, target: { text: ["x", "y"], special: [false, false] } },
    kinds: [
      { name: "encoder", layers: 1, heads: 1, queries: "source", keys: "source", mask: "none" },
      { name: "cross", layers: 1, heads: 1, queries: "target", keys: "source", mask: "none" },
    ],
  });

  it("is the query index, or a key index only where queries and keys are the same tokens", () => {
    const base = new SelectionStore({ kind: "cross" }).get();
    expect(focusedQuery(cross, { ...base, hover: 1, hoverSide: "query" })).toBe(1);
    expect(focusedQuery(cross, { ...base, hover: 2, hoverSide: "key" })).toBe(-1);
    expect(focusedQuery(cross, { ...base, kind: "encoder", hover: 2, hoverSide: "key" })).toBe(2);
  });
});

describe("bindModel", () => {
  const meta = fakeMeta({ layers: 4, heads: 3 });
  const traits = { kind: "self", layer: 0, heads: [0, 1, 2], head: -1, aggregate: "mean", token: -1, weighting: "raw" };

  it("seeds the store from the traits", () => {
    const model = new FakeModel({ ...traits, layer: 2, token: 3 });
    const sel = selectionFromModel(model, meta);
    expect(sel).toMatchObject({ kind: "self", layer: 2, heads: [0, 1, 2], head: -1, pinned: 3, pinnedSide: "query" });
  });

  it("pushes user changes and the derived token, once each, without echo", () => {
    const model = new FakeModel(traits);
    const store = new SelectionStore(selectionFromModel(model, meta));
    bindModel(model, store, meta);
    expect(model.saves).toBe(0);
    store.set({ layer: 2 });
    expect(model.values.layer).toBe(2);
    expect(model.saves).toBe(1);
    store.set({ hover: 4, hoverSide: "query" });
    expect(model.values.token).toBe(4);
    store.set({ heads: [1] });
    expect(model.values.heads).toEqual([1]);
    store.set({ aggregate: "rollout" });
    expect(model.values.aggregate).toBe("rollout");
    expect(model.saves).toBe(4);
    store.set({ pair: "AB", showMask: true }); // view-local: not a trait
    expect(model.saves).toBe(4);
    store.set({ weighting: "value" });
    expect(model.values.weighting).toBe("value");
    expect(model.saves).toBe(5);
  });

  it("applies Python's changes to the store without saving them back", () => {
    const model = new FakeModel(traits);
    const store = new SelectionStore(selectionFromModel(model, meta));
    bindModel(model, store, meta);
    model.pythonSets({ layer: 3, heads: [2], head: 2, aggregate: "rollout" });
    expect(store.get()).toMatchObject({ layer: 3, heads: [2], head: 2, aggregate: "rollout" });
    model.pythonSets({ token: 1 });
    expect(store.get()).toMatchObject({ pinned: 1, pinnedSide: "query" });
    model.pythonSets({ weighting: "value" });
    expect(store.get().weighting).toBe("value");
    expect(model.saves).toBe(0);
    model.pythonSets({ weighting: "bogus" }); // not a weighting: the store keeps its own, and says so
    expect(store.get().weighting).toBe("value");
    expect(model.values.weighting).toBe("value");
  });

  it("unbinds both directions", () => {
    const model = new FakeModel(traits);
    const store = new SelectionStore(selectionFromModel(model, meta));
    const unbind = bindModel(model, store, meta);
    unbind();
    expect(model.listeners("change:layer")).toBe(0);
    store.set({ layer: 1 });
    expect(model.values.layer).toBe(0);
  });
});

