import { describe, expect, it } from "vitest";
import { keyAction, KEYS } from "../src/keyboard";
import { SelectionStore, type Selection } from "../src/state";
import { decodeMeta, WIRE_VERSION } from "../src/wire";
import { fakeMeta } from "./helpers";

const meta = fakeMeta({ tokens: ["a", "b", "c", "d"], layers: 3, heads: 12 });
const all = { query: [0, 1, 2, 3], key: [0, 1, 2, 3] };
const state = (patch: Partial<Selection> = {}) => new SelectionStore({ kind: "self", heads: [0, 1], ...patch }).get();
const press = (key: string, patch: Partial<Selection> = {}, order = all) => keyAction(key, state(patch), meta, order);

describe("keyboard", () => {
  it("moves the focused token with the arrows, pinning it and keeping its side", () => {
    expect(press("ArrowDown")).toEqual({ set: { pinned: 0, pinnedSide: "query", hover: -1 } });
    expect(press("ArrowUp")).toEqual({ set: { pinned: 3, pinnedSide: "query", hover: -1 } });
    expect(press("ArrowRight", { pinned: 1 })).toEqual({ set: { pinned: 2, pinnedSide: "query", hover: -1 } });
    expect(press("ArrowLeft", { hover: 2, hoverSide: "key" })).toEqual({ set: { pinned: 1, pinnedSide: "key", hover: -1 } });
    expect(press("ArrowRight", { pinned: 3 })).toEqual({ set: { pinned: 3, pinnedSide: "query", hover: -1 } });
  });

  it("moves through the tokens the pair filter shows", () => {
    expect(press("ArrowDown", { pinned: 1 }, { query: [1, 3], key: [0] })).toEqual({ set: { pinned: 3, pinnedSide: "query", hover: -1 } });
    expect(press("ArrowDown", {}, { query: [], key: [] })).toBeNull();
  });

  it("changes layer with PageUp/PageDown and [ ], within range", () => {
    expect(press("PageDown")).toEqual({ set: { layer: 1 } });
    expect(press("]", { layer: 2 })).toEqual({ set: { layer: 2 } });
    expect(press("[", { layer: 2 })).toEqual({ set: { layer: 1 } });
    expect(press("PageUp")).toEqual({ set: { layer: 0 } });
  });

  it("chooses heads with digits and h/l, the aggregate with m and r", () => {
    expect(press("7")).toEqual({ set: { head: 7 } });
    expect(press("l")).toEqual({ set: { head: 0 } });
    expect(press("l", { head: 11 })).toEqual({ set: { head: 11 } });
    expect(press("h", { head: 0 })).toEqual({ set: { head: -1 } });
    expect(press("m", { head: 4 })).toEqual({ set: { head: -1, aggregate: "mean" } });
    expect(press("r")).toEqual({ set: { head: -1, aggregate: "rollout" } });
    const few = fakeMeta({ tokens: ["a"], heads: 2 });
    expect(keyAction("5", state(), few, all)).toBeNull();
  });

  it("offers no rollout across sequences", () => {
    const cross = decodeMeta({
      version: WIRE_VERSION, model: "m", warnings: [],
      sequences: { s: { text: ["a"], special: [false] }, t: { text: ["b"], special: [false] } },
      kinds: [{ name: "cross", layers: 1, heads: 1, queries: "t", keys: "s", mask: "none" }],
    });
    expect(keyAction("r", state({ kind: "cross" }), cross, all)).toBeNull();
  });

  it("unpins with Escape, toggles help with ?, and leaves other keys alone", () => {
    expect(press("Escape", { pinned: 2 })).toEqual({ set: { pinned: -1, hover: -1 } });
    expect(press("?")).toEqual({ help: true });
    expect(press("x")).toBeNull();
    expect(press("Enter")).toBeNull();
  });

  it("documents every key it handles", () => {
    expect(KEYS.map(([k]) => k).join(" ")).toMatch(/PageUp.*0-9.*h l.*m.*r.*Esc.*\?/);
  });
});
