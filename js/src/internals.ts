/**
 * Model internals the views beside attention show: hidden-state norms and cosines, the logit
 * lens (computed by Python for the positions the lens tab shows), next-token logits (last
 * position eager, others fetched) and generation steps. Decodes the `_internals` trait
 * (WireInternals, wire-schema.ts) and asks Python for the rest over the view's channel (rpc.ts).
 */

import type { Answer, Channel } from "./rpc";
import type { WidgetModel } from "./sync";
import {
  MAX_LENS_POSITIONS, REQUEST_LENS, REQUEST_LOGITS, toFloat32, toInt32, unchecked, type Unchecked, type WireBytes,
  type WireGeneration, type WireHidden, type WireInternals, type WireLensInfo, type WireLensReply, type WireLogits,
} from "./wire";

/** Rows are the embeddings (0) then each layer (1..layers); values (layers + 1) x tokens, row-major. */
export interface HiddenData {
  layers: number;
  tokens: number;
  norms: Float32Array;
  /** Cosine to the same token one row earlier; NaN in row 0. */
  cosines: Float32Array;
  /** The last row is after the model's final norm (as transformers returns it for GPT-2, Llama). */
  lastNormed: boolean;
}

/** The lens at one position: top-k token ids and probabilities per row, (layers + 1) x k. */
export interface LensColumn {
  ids: Int32Array;
  probs: Float32Array;
}

/** Python's reply to a lens request: ids and probs are (layers + 1) x positions x k, row-major. */
export interface LensReply {
  positions: number[];
  k: number;
  ids: Int32Array;
  probs: Float32Array;
}

/** Asks Python for the lens at some positions (REQUEST_LENS). */
export type LensFetcher = (positions: number[]) => Promise<LensReply>;

/** Positions asked for in one request: the first columns show quickly, the rest follow. */
export const LENS_CHUNK = 16;

/**
 * The logit lens, filled in on demand: `want` queues the positions a view shows (most wanted
 * first) and they are fetched LENS_CHUNK at a time, one request after the other, so a moved
 * window drops what it no longer needs; listeners hear of each reply and of errors.
 */
export class LensStore {
  private readonly have = new Map<number, LensColumn>();
  private readonly failed = new Map<number, Error>();
  private queue: number[] = [];
  private busy = false;
  private readonly listeners = new Set<(err?: Error) => void>();

  constructor(readonly layers: number, readonly tokens: number, readonly k: number, private readonly fetch?: LensFetcher) {}

  /** The lens at `position`, or undefined until it has come. */
  peek(position: number): LensColumn | undefined {
    return this.have.get(position);
  }

  /** Why `position` could not be had, if it could not. */
  error(position: number): Error | undefined {
    return this.failed.get(position);
  }

  /** Whether a request is out or queued. */
  get loading(): boolean {
    return this.busy || this.queue.length > 0;
  }

  /** Hear of each arrival (no argument) and failure (the error); returns the unsubscribe. */
  subscribe(fn: (err?: Error) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Fetch these positions (in this order) that are not here, replacing what was queued before. */
  want(positions: number[]): void {
    this.queue = positions.filter((p, i) => Number.isInteger(p) && p >= 0 && p < this.tokens &&
      !this.have.has(p) && !this.failed.has(p) && positions.indexOf(p) === i);
    this.pump();
  }

  private emit(err?: Error): void {
    for (const fn of [...this.listeners]) fn(err);
  }

  private pump(): void {
    if (this.busy || this.queue.length === 0) return;
    const chunk = this.queue.splice(0, Math.min(LENS_CHUNK, MAX_LENS_POSITIONS)).filter((p) => !this.have.has(p));
    if (chunk.length === 0) {
      this.pump();
      return;
    }
    if (!this.fetch) {
      const err = new Error("the logit lens is computed by Python on request, and this view has no kernel to ask");
      for (const p of [...chunk, ...this.queue]) this.failed.set(p, err);
      this.queue = [];
      this.emit(err);
      return;
    }
    this.busy = true;
    const fail = (err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const p of chunk) this.failed.set(p, error);
      this.emit(error);
    };
    this.fetch(chunk).then(
      (reply) => {
        this.busy = false;
        try {
          this.store(reply);
          this.emit();
        } catch (err) {
          fail(err);
        }
        this.pump();
      },
      (err: unknown) => {
        this.busy = false;
        fail(err);
        this.pump();
      },
    );
  }

  /** Forget the failures, so the next `want` asks for those positions again. */
  retry(): void {
    this.failed.clear();
  }

  private store(reply: LensReply): void {
    const m = reply.positions.length, k = reply.k, rows = this.layers + 1;
    if (k !== this.k || reply.ids.length !== rows * m * k || reply.probs.length !== rows * m * k) {
      throw new Error(`tx_magic: malformed lens reply: ${reply.ids.length} ids for ${rows} rows x ${m} positions x ${k}`);
    }
    reply.positions.forEach((position, j) => {
      const ids = new Int32Array(rows * k), probs = new Float32Array(rows * k);
      for (let r = 0; r < rows; r++) {
        const from = (r * m + j) * k;
        ids.set(reply.ids.subarray(from, from + k), r * k);
        probs.set(reply.probs.subarray(from, from + k), r * k);
      }
      this.have.set(position, { ids, probs });
    });
  }
}

/** Tokens from `prompt` on were generated, `steps` of them. */
export interface GenerationInfo {
  prompt: number;
  steps: number;
  sample: boolean;
}

/** Full-vocabulary logits after each position: the last one here, the others fetched. */
export interface LogitsSource {
  readonly tokens: number;
  peek(position: number): Float32Array | undefined;
  get(position: number): Promise<Float32Array>;
}

export interface Internals {
  hidden: HiddenData | null;
  lens: LensStore | null;
  logits: LogitsSource | null;
  /** Display string of each token id (for lens and logits). */
  vocab: string[];
  generation: GenerationInfo | null;
  /** Generation step the views show (0..steps): tokens 0 .. prompt + step - 1. */
  step: number;
}

/** Fetches one position's logits (Python's REQUEST_LOGITS). */
export type LogitsFetcher = (position: number) => Promise<Float32Array>;

function record<T>(value: unknown, what: string): Unchecked<T> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`tx_magic: malformed model internals: ${what} is not an object`);
  }
  return value as Unchecked<T>;
}

function count<T>(r: Unchecked<T>, key: keyof T & string, what: string): number {
  const v = r[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new Error(`tx_magic: malformed model internals: ${what}.${key} must be a count`);
  }
  return v;
}

function sized<T extends { length: number }>(values: T, n: number, what: string): T {
  if (values.length !== n) throw new Error(`tx_magic: malformed model internals: ${what} holds ${values.length} values, expected ${n}`);
  return values;
}

/** Logits of the last position, others through `fetch`; cached and deduplicated. */
export class LogitsStore implements LogitsSource {
  private readonly have = new Map<number, Float32Array>();
  private readonly inFlight = new Map<number, Promise<Float32Array>>();

  constructor(readonly tokens: number, last: Float32Array, private readonly fetch?: LogitsFetcher) {
    this.have.set(tokens - 1, last);
  }

  peek(position: number): Float32Array | undefined {
    return this.have.get(position);
  }

  get(position: number): Promise<Float32Array> {
    const have = this.have.get(position);
    if (have) return Promise.resolve(have);
    if (!Number.isInteger(position) || position < 0 || position >= this.tokens) {
      return Promise.reject(new Error(`tx_magic: no token at position ${position}`));
    }
    if (!this.fetch) return Promise.reject(new Error("tx_magic: only the last position's logits are here"));
    let pending = this.inFlight.get(position);
    if (!pending) {
      pending = this.fetch(position).then((v) => {
        this.have.set(position, v);
        return v;
      }).finally(() => this.inFlight.delete(position));
      this.inFlight.set(position, pending);
    }
    return pending;
  }
}

/** Decode `_internals`; null when the trace has none. `fetch` and `fetchLens` ask Python for
 * other positions' logits and for the lens (without them, only what came eagerly shows). */
export function decodeInternals(raw: unknown, fetch?: LogitsFetcher, fetchLens?: LensFetcher): Internals | null {
  if (raw === undefined || raw === null) return null;
  const r = record<WireInternals>(raw, "_internals");
  if (Object.keys(r).length === 0) return null;
  let hidden: HiddenData | null = null;
  if (r.hidden !== undefined) {
    const x = record<WireHidden>(r.hidden, "hidden");
    const layers = count(x, "layers", "hidden"), tokens = count(x, "tokens", "hidden");
    const n = (layers + 1) * tokens;
    hidden = {
      layers, tokens,
      norms: sized(toFloat32(x.norms as WireBytes), n, "hidden.norms"),
      cosines: sized(toFloat32(x.cosines as WireBytes), n, "hidden.cosines"),
      lastNormed: x.last_normed === true,
    };
  }
  let lens: LensStore | null = null;
  if (r.lens !== undefined) {
    const x = record<WireLensInfo>(r.lens, "lens");
    lens = new LensStore(count(x, "layers", "lens"), count(x, "tokens", "lens"), count(x, "k", "lens"), fetchLens);
  }
  const vocab = Array.isArray(r.vocab) ? (r.vocab as unknown[]).map(String) : [];
  let logits: LogitsSource | null = null;
  if (r.logits !== undefined) {
    const x = record<WireLogits>(r.logits, "logits");
    const position = count(x, "position", "logits");
    const last = toFloat32(x.data as WireBytes);
    if (vocab.length && last.length !== vocab.length) {
      throw new Error(`tx_magic: malformed model internals: ${last.length} logits for a vocabulary of ${vocab.length}`);
    }
    logits = new LogitsStore(position + 1, last, fetch);
  }
  let generation: GenerationInfo | null = null;
  if (r.generation !== undefined) {
    const x = record<WireGeneration>(r.generation, "generation");
    generation = { prompt: count(x, "prompt", "generation"), steps: count(x, "steps", "generation"), sample: x.sample === true };
  }
  return { hidden, lens, logits, vocab, generation, step: generation?.steps ?? 0 };
}

/** How many tokens the internals views show: all, or up to the generation step. */
export function shownTokens(internals: Internals, total: number): number {
  const g = internals.generation;
  return g ? Math.min(total, g.prompt + Math.max(0, Math.min(g.steps, internals.step))) : total;
}

/** The display string of a token id ("<id N>" when unknown). */
export function tokenString(internals: Internals, id: number): string {
  return internals.vocab[id] ?? `<id ${id}>`;
}

/** Show a vocabulary token's leading/trailing spaces and its newlines (" Paris" differs from "Paris"). */
export function visibleToken(text: string): string {
  const edges = text.replace(/^ +| +$/g, (run) => "␣".repeat(run.length));
  return edges.replace(/\n/g, "↵").replace(/\t/g, "⇥") || "∅";
}

/** A lens reply (WireLensReply, buffers [int32 ids, float32 probs]) as a LensReply. */
export function decodeLensReply({ content, buffers }: Answer): LensReply {
  const m = unchecked<WireLensReply>(content, "a lens reply");
  if (!Array.isArray(m.positions) || typeof m.k !== "number" || buffers.length < 2) {
    throw new Error("tx_magic: malformed lens reply (positions, k and two buffers expected)");
  }
  return { positions: m.positions.map(Number), k: m.k, ids: toInt32(buffers[0] as WireBytes), probs: toFloat32(buffers[1] as WireBytes) };
}

/** Ask Python for a position's logits (REQUEST_LOGITS; the reply's one buffer is float32 (V,)). */
export function logitsFetcher(channel: Channel, timeoutMs?: number): LogitsFetcher {
  return (position) => channel.request(REQUEST_LOGITS, { position }, { timeoutMs })
    .then(({ buffers }) => toFloat32(buffers[0] as WireBytes));
}

/** Ask Python for the lens at some positions (REQUEST_LENS). */
export function lensFetcher(channel: Channel, timeoutMs?: number): LensFetcher {
  return (positions) => channel.request(REQUEST_LENS, { positions }, { timeoutMs }).then(decodeLensReply);
}

/** The widget's internals (null when none), fetching the rest over `channel`. */
export function internalsFromModel(model: WidgetModel, channel: Channel): Internals | null {
  return decodeInternals(model.get("_internals"), logitsFetcher(channel), lensFetcher(channel));
}

/** At most this many token columns are drawn at once; longer inputs show a window around the focus. */
export const MAX_COLUMNS = 192;

/** The [start, end) token columns to draw: all when they fit, else a window centred on `focus`. */
export function columnWindow(total: number, focus: number, max = MAX_COLUMNS): [number, number] {
  if (total <= max) return [0, total];
  const centre = focus >= 0 && focus < total ? focus : total - 1;
  const start = Math.max(0, Math.min(total - max, centre - Math.floor(max / 2)));
  return [start, start + max];
}
