// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { watchConnection } from "../src/connection";
import type { WidgetModel } from "../src/sync";

function fakeModel() {
  const handlers = new Map<string, Set<(...a: unknown[]) => void>>();
  const model = {
    get: () => undefined, set: () => {}, save_changes: () => {}, send: () => {},
    on: (e: string, cb: (...a: unknown[]) => void) => { if (!handlers.has(e)) handlers.set(e, new Set()); handlers.get(e)!.add(cb); },
    off: (e?: string | null, cb?: ((...a: unknown[]) => void) | null) => { if (e && cb) handlers.get(e)?.delete(cb); },
  } as unknown as WidgetModel;
  const fire = (e: string) => handlers.get(e)?.forEach((cb) => cb());
  return { model, fire, count: (e: string) => handlers.get(e)?.size ?? 0 };
}

describe("watchConnection", () => {
  it("puts one banner above the drawing when the kernel goes, and removes it on cleanup", () => {
    const el = document.createElement("div");
    el.append(document.createElement("canvas"));
    const { model, fire, count } = fakeModel();
    const stop = watchConnection(model, el);
    expect(el.querySelector(".txm-disconnected")).toBeNull();
    fire("comm_live_update");
    fire("comm_live_update");
    const banners = el.querySelectorAll(".txm-disconnected");
    expect(banners.length).toBe(1);
    expect(banners[0].textContent).toMatch(/kernel restarted.*Re-run the cell/);
    expect(banners[0].getAttribute("role")).toBe("status");
    expect(el.firstElementChild).toBe(banners[0]);
    expect(el.querySelector("canvas")).not.toBeNull();
    stop();
    expect(el.querySelector(".txm-disconnected")).toBeNull();
    expect(count("comm_live_update")).toBe(0);
  });
});
