// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { watchConnection } from "../src/connection";
import { FakeModel } from "./helpers";

describe("watchConnection", () => {
  it("puts one banner above the drawing when the kernel goes, and removes it on cleanup", () => {
    const el = document.createElement("div");
    el.append(document.createElement("canvas"));
    const model = new FakeModel({});
    const stop = watchConnection(model, el);
    expect(el.querySelector(".txm-disconnected")).toBeNull();
    model.emit("comm_live_update");
    model.emit("comm_live_update");
    const banners = el.querySelectorAll(".txm-disconnected");
    expect(banners.length).toBe(1);
    expect(banners[0].textContent).toMatch(/kernel restarted.*Re-run the cell/);
    expect(banners[0].getAttribute("role")).toBe("status");
    expect(el.firstElementChild).toBe(banners[0]);
    expect(el.querySelector("canvas")).not.toBeNull();
    stop();
    expect(el.querySelector(".txm-disconnected")).toBeNull();
    expect(model.listeners("comm_live_update")).toBe(0);
  });
});
