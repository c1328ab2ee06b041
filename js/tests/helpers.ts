/** Test helpers: fake traces, sources, models, canvases, a host element per test, and float bytes. */

import { afterEach, beforeEach } from "vitest";
import { seededRandom } from "../src/sampling";
import { LayerStore, type LayerData } from "../src/source";
import type { ModelListener, WidgetModel } from "../src/sync";
import { decodeMeta, WIRE_VERSION, type Meta } from "../src/wire";

/** Rows that sum to 1 over allowed keys, 0 where masked. */
export function randomLayer(kind: string, layer: number, heads: number, q: number, k: number, mask: Uint8Array | null, seed = 1): LayerData {
  const next = seededRandom(seed * 7919 + layer * 31 + kind.length);
  const data = new Float32Array(heads * q * k);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < q; i++) {
      let sum = 0;
      const base = (h * q + i) * k;
      for (let j = 0; j < k; j++) {
        const allowed = mask ? mask[i * k + j] : 1;
        const v = allowed ? Math.exp(4 * next()) : 0;
        data[base + j] = v;
        sum += v;
      }
      for (let j = 0; j < k; j++) data[base + j] /= sum || 1;
    }
  }
  return { kind, layer, shape: [heads, q, k], data };
}

export interface FakeTraceOptions {
  tokens?: string[];
  layers?: number;
  heads?: number;
  causal?: boolean;
  warnings?: string[];
  /** 0/1 per token: a sentence pair. */
  segments?: number[];
}

/** A one-kind ("self") trace. */
export function fakeMeta(opts: FakeTraceOptions = {}): Meta {
  const tokens = opts.tokens ?? ["[CLS]", "the", "cat", "sat", "[SEP]"];
  return decodeMeta({
    version: WIRE_VERSION,
    model: "fake/model",
    warnings: opts.warnings ?? [],
    sequences: { input: { text: tokens, special: tokens.map((t) => t.startsWith("[")), segment: opts.segments ?? tokens.map(() => 0) } },
    kinds: [{ name: "self", layers: opts.layers ?? 4, heads: opts.heads ?? 3, queries: "input", keys: "input", mask: opts.causal ? "causal" : "none" }],
  });
}

/** A source holding the layers in `eager` (all by default), fetching the rest via `fetch`. */
export function fakeSource(meta: Meta, eager?: number[], fetch?: (kind: string, layer: number) => Promise<LayerData>): LayerStore {
  const info = meta.kinds[0];
  const n = meta.sequences[info.queries].text.length;
  const mask = info.mask === "causal" ? causalMask(n) : null;
  const layers = (eager ?? Array.from({ length: info.layers }, (_, l) => l)).map((l) => randomLayer(info.name, l, info.heads, n, n, mask, 3));
  return new LayerStore(meta, layers, fetch);
}

export function causalMask(n: number): Uint8Array {
  const m = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = 1;
  return m;
}

/** Float32 little-endian bytes placed at `offset` inside a bigger buffer. */
export function floatBytesAt(values: number[], offset: number): DataView {
  const buf = new ArrayBuffer(offset + values.length * 4 + 3);
  const view = new DataView(buf, offset, values.length * 4);
  values.forEach((v, i) => {
    view.setFloat32(i * 4, v, true);
  });
  return view;
}

/** A Backbone-like model: change events fire after all values of a set are in place. */
export class FakeModel implements WidgetModel {
  values: Record<string, unknown>;
  saves = 0;
  sent: unknown[] = [];
  /** Handlers get whatever a test emits, as the host's model hands over whatever its event carries. */
  private handlers = new Map<string, Set<(...args: unknown[]) => void>>();
  constructor(values: Record<string, unknown>) {
    this.values = { ...values };
  }
  get(name: string) {
    return this.values[name];
  }
  set(name: string, value: unknown) {
    this.values[name] = value;
  }
  save_changes() {
    this.saves++;
  }
  on(event: string, cb: ModelListener) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb as (...args: unknown[]) => void);
  }
  off(event?: string | null, cb?: ModelListener | null) {
    if (event && cb) this.handlers.get(event)?.delete(cb as (...args: unknown[]) => void);
  }
  sentBuffers: unknown[][] = [];
  send(content: unknown, _callbacks?: unknown, buffers?: unknown[]) {
    this.sent.push(content);
    this.sentBuffers.push(buffers ?? []);
  }
  /** What Python does: set traits, then fire their change events. */
  pythonSets(values: Record<string, unknown>) {
    Object.assign(this.values, values);
    for (const name of Object.keys(values)) for (const cb of this.handlers.get(`change:${name}`) ?? []) cb();
  }
  emit(event: string, ...args: unknown[]) {
    for (const cb of this.handlers.get(event) ?? []) cb(...args);
  }
  listeners(event: string) {
    return this.handlers.get(event)?.size ?? 0;
  }
}


/** A recording stand-in for CanvasRenderingContext2D (jsdom has no canvas). */
export class FakeContext2D {
  calls: { name: string; args: unknown[] }[] = [];
  lastImage: { data: Uint8ClampedArray; width: number; height: number } | null = null;
  strokeStyle: unknown = "";
  fillStyle: unknown = "";
  globalAlpha = 1;
  lineWidth = 1;
  lineCap = "butt";
  font = "10px sans-serif";
  textAlign = "start";
  textBaseline = "alphabetic";
  constructor(readonly canvas: HTMLCanvasElement) {}
  private record(name: string, args: unknown[]) {
    this.calls.push({ name, args });
  }
  count(name: string): number {
    return this.calls.filter((c) => c.name === name).length;
  }
  reset(): void {
    this.calls = [];
  }
  setTransform(...a: unknown[]) { this.record("setTransform", a); }
  clearRect(...a: unknown[]) { this.record("clearRect", a); }
  fillRect(...a: unknown[]) { this.record("fillRect", a); }
  strokeRect(...a: unknown[]) { this.record("strokeRect", a); }
  beginPath() { this.record("beginPath", []); }
  moveTo(...a: unknown[]) { this.record("moveTo", a); }
  lineTo(...a: unknown[]) { this.record("lineTo", a); }
  bezierCurveTo(...a: unknown[]) { this.record("bezierCurveTo", a); }
  arc(...a: unknown[]) { this.record("arc", a); }
  rect(...a: unknown[]) { this.record("rect", a); }
  fillText(...a: unknown[]) { this.record("fillText", a); }
  stroke() { this.record("stroke", [this.strokeStyle, this.globalAlpha]); }
  fill() { this.record("fill", []); }
  setLineDash(...a: unknown[]) { this.record("setLineDash", a); }
  createImageData(width: number, height: number) {
    return { data: new Uint8ClampedArray(width * height * 4), width, height };
  }
  putImageData(img: { data: Uint8ClampedArray; width: number; height: number }) {
    this.lastImage = img;
    this.record("putImageData", []);
  }
}

const contexts = new WeakMap<HTMLCanvasElement, FakeContext2D>();

/** Make every canvas hand out a FakeContext2D (or null with `available = false`). */
export function installFakeCanvas(available = true): void {
  HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement, kind: string) {
    if (!available || kind !== "2d") return null;
    let ctx = contexts.get(this);
    if (!ctx) {
      ctx = new FakeContext2D(this);
      contexts.set(this, ctx);
    }
    return ctx as unknown as CanvasRenderingContext2D;
  } as typeof HTMLCanvasElement.prototype.getContext;
}

export function contextOf(canvas: HTMLCanvasElement | null): FakeContext2D {
  const ctx = canvas ? contexts.get(canvas) : undefined;
  if (!ctx) throw new Error("no fake context for this canvas");
  return ctx;
}

export interface TestHost {
  /** This test's host element (in the document). */
  readonly host: HTMLElement;
  /** What the test mounted in the host: called after the test. */
  cleanup: (() => void) | null;
}

/**
 * For every test of the calling file or describe block: fake canvases and a fresh host element
 * in the document. After each test, `cleanup` runs (and is reset), the host is removed, then `after`.
 */
export function testHost(after?: () => void): TestHost {
  let el: HTMLElement | null = null;
  const fixture: TestHost = {
    get host(): HTMLElement {
      if (!el) throw new Error("testHost: the host exists only while a test runs");
      return el;
    },
    cleanup: null,
  };
  beforeEach(() => {
    installFakeCanvas(true);
    el = document.createElement("div");
    document.body.append(el);
  });
  afterEach(() => {
    fixture.cleanup?.();
    fixture.cleanup = null;
    el?.remove();
    el = null;
    after?.();
  });
  return fixture;
}

/** A promise with its resolve/reject exposed. */
export function deferred<T>() {
  let resolve!: (v: T) => void, reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const flush = () => new Promise<void>((r) => setTimeout(r, 0));
