/**
 * The wire format between Python and the renderer: a one-to-one mirror of tx_magic/wire.py
 * (authoritative). A Python test parses the `export const NAME = ...` lines below and checks
 * they match the Python constants and key tuples, so keep each on one line.
 *
 * `_meta` (JSON): version, model, warnings, sequences {name: {text, special, segment, ids}}, kinds [...].
 * `_layers`: blocks {kind, layer, dtype: "float32", shape: [H, Q, K], data: bytes}, data
 * little-endian float32, row-major (head, query, key). Explicit masks travel as Q*K uint8
 * in the kind's `mask_data` (1 = allowed). Other layers are fetched with custom messages.
 * Python asks a view for a picture with REQUEST_EXPORT; the view answers REPLY_EXPORT with the
 * file as the message's buffer (at most EXPORT_MAX_BYTES), or REPLY_EXPORT_ERROR.
 */

export const WIRE_VERSION = 1;
export const EAGER_BUDGET = 8 * 1024 * 1024;
export const DTYPE = "float32";

export const MASK_NONE = "none";
export const MASK_CAUSAL = "causal";
export const MASK_EXPLICIT = "explicit";

export const REQUEST_LAYER = "get_layer";
export const REPLY_LAYER = "layer";
export const REPLY_ERROR = "error";

export const REQUEST_EXPORT = "export";
export const REPLY_EXPORT = "exported";
export const REPLY_EXPORT_ERROR = "export_error";
export const EXPORT_FORMATS = ["png", "svg"] as const;
export const EXPORT_MAX_BYTES = 9 * 1024 * 1024;

export const META_KEYS = ["version", "model", "warnings", "sequences", "kinds"] as const;
export const SEQUENCE_KEYS = ["text", "special", "segment", "ids"] as const;
export const KIND_KEYS = ["name", "layers", "heads", "queries", "keys", "mask"] as const;
export const BLOCK_KEYS = ["kind", "layer", "dtype", "shape", "data"] as const;

export type MaskType = typeof MASK_NONE | typeof MASK_CAUSAL | typeof MASK_EXPLICIT;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Bytes as they may arrive: anywidget gives DataView, Colab Uint8Array, reports base64 text. */
export type WireBytes = DataView | Uint8Array | ArrayBuffer | string;

/** One token sequence ("input", "source", "target"). */
export interface SequenceInfo {
  text: string[];
  special: boolean[];
  /** 0 for text A, 1 for text B of a sentence pair. */
  segment: number[];
  /** Token ids (-1 where unknown); head types use them to find repeats (induction). */
  ids: number[];
}

/** One attention kind ("self", "encoder", "decoder", "cross") and where its tokens come from. */
export interface KindInfo {
  name: string;
  layers: number;
  heads: number;
  /** Name of the sequence the queries come from. */
  queries: string;
  /** Name of the sequence the keys come from. */
  keys: string;
  mask: MaskType;
  /** For an explicit mask: Q*K bytes, 1 = allowed. */
  mask_data?: Uint8Array;
}

/** The decoded `_meta` trait. */
export interface Meta {
  version: number;
  model: string;
  warnings: string[];
  sequences: Record<string, SequenceInfo>;
  kinds: KindInfo[];
}

/** One decoded layer: all heads of one layer of one kind, (head, query, key) row-major. */
export interface LayerBlock {
  kind: string;
  layer: number;
  shape: [heads: number, queries: number, keys: number];
  data: Float32Array;
}

/** A layer block as it arrives on the wire (data still bytes). */
export interface RawLayerBlock {
  kind: string;
  layer: number;
  dtype: string;
  shape: number[];
  data: WireBytes;
}

function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Any wire bytes as a Uint8Array view (no copy unless the input is base64 text). */
export function toBytes(buf: WireBytes): Uint8Array {
  if (typeof buf === "string") return base64ToBytes(buf);
  if (buf instanceof Uint8Array) return buf;
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  // Typed arrays from another realm (iframes, test environments) fail instanceof checks.
  const like = buf as { buffer?: ArrayBuffer; byteOffset?: number; byteLength?: number };
  if (like && like.buffer && typeof like.byteLength === "number") {
    return new Uint8Array(like.buffer, like.byteOffset ?? 0, like.byteLength);
  }
  throw new TypeError(`tx_magic: expected binary data, got ${describe(buf)}`);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Little-endian float32 bytes as a Float32Array. Views the same memory when the offset is
 * 4-aligned (the usual case), copies when it is not (Float32Array cannot start unaligned).
 */
export function toFloat32(buf: WireBytes): Float32Array {
  const bytes = toBytes(buf);
  if (bytes.byteLength % 4 !== 0) {
    throw new Error(`tx_magic: float32 data has ${bytes.byteLength} bytes, not a multiple of 4`);
  }
  const n = bytes.byteLength / 4;
  if (!LITTLE_ENDIAN_HOST) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  return new Float32Array(bytes.slice().buffer, 0, n);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function need<T>(ok: boolean, value: T, what: string): T {
  if (!ok) throw new Error(`tx_magic: malformed wire data: ${what}`);
  return value;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/** Validate and decode the `_meta` trait; throws a clear Error on a version mismatch. */
export function decodeMeta(raw: unknown): Meta {
  if (!isRecord(raw) || Object.keys(raw).length === 0) {
    throw new Error("tx_magic: no trace metadata received (the _meta trait is empty)");
  }
  if (raw.version !== WIRE_VERSION) {
    throw new Error(
      `tx_magic: wire format version mismatch: Python sent version ${String(raw.version)}, ` +
        `this renderer reads version ${WIRE_VERSION}. The installed Python package and its ` +
        "bundled renderer disagree: reinstall tx_magic, restart the kernel and reload the page.",
    );
  }
  const model = need(typeof raw.model === "string", raw.model as string, "model must be a string");
  const warnings = need(Array.isArray(raw.warnings), raw.warnings as unknown[], "warnings must be a list").map(String);
  need(isRecord(raw.sequences), null, "sequences must be an object");
  const sequences: Record<string, SequenceInfo> = {};
  for (const [name, seq] of Object.entries(raw.sequences as Record<string, unknown>)) {
    need(isRecord(seq) && Array.isArray(seq.text), null, `sequence ${name} has no text list`);
    const s = seq as Record<string, unknown>;
    const text = (s.text as unknown[]).map((t) => String(t));
    const special = Array.isArray(s.special) ? (s.special as unknown[]).map(Boolean) : text.map(() => false);
    need(special.length === text.length, null, `sequence ${name}: text and special differ in length`);
    const segment = Array.isArray(s.segment) ? (s.segment as unknown[]).map(Number) : text.map(() => 0);
    need(segment.length === text.length, null, `sequence ${name}: text and segment differ in length`);
    const ids = Array.isArray(s.ids) ? (s.ids as unknown[]).map(Number) : text.map(() => -1);
    need(ids.length === text.length, null, `sequence ${name}: text and ids differ in length`);
    sequences[name] = { text, special, segment, ids };
  }
  need(Array.isArray(raw.kinds) && (raw.kinds as unknown[]).length > 0, null, "kinds must be a non-empty list");
  const kinds = (raw.kinds as unknown[]).map((k, i): KindInfo => {
    need(isRecord(k), null, `kind #${i} is not an object`);
    const r = k as Record<string, unknown>;
    const name = need(typeof r.name === "string", r.name as string, `kind #${i} has no name`);
    need(isCount(r.layers) && isCount(r.heads), null, `kind ${name}: layers and heads must be counts`);
    const queries = String(r.queries);
    const keys = String(r.keys);
    need(queries in sequences && keys in sequences, null, `kind ${name} names an unknown sequence`);
    const mask = r.mask ?? MASK_NONE;
    need(mask === MASK_NONE || mask === MASK_CAUSAL || mask === MASK_EXPLICIT, null, `kind ${name}: unknown mask ${String(mask)}`);
    const info: KindInfo = {
      name, layers: r.layers as number, heads: r.heads as number, queries, keys, mask: mask as MaskType,
    };
    if (mask === MASK_EXPLICIT) {
      need(r.mask_data !== undefined && r.mask_data !== null, null, `kind ${name}: explicit mask without mask_data`);
      const bytes = toBytes(r.mask_data as WireBytes);
      const q = sequences[queries].text.length;
      const kk = sequences[keys].text.length;
      need(bytes.length === q * kk, null, `kind ${name}: mask_data has ${bytes.length} bytes, expected ${q}x${kk}`);
      info.mask_data = bytes;
    }
    return info;
  });
  return { version: WIRE_VERSION, model, warnings, sequences, kinds };
}

/** Decode one layer block (an `_layers` entry, or a REPLY_LAYER message with its buffer as data). */
export function decodeBlock(raw: unknown): LayerBlock {
  need(isRecord(raw), null, "a layer block is not an object");
  const r = raw as Record<string, unknown>;
  const kind = need(typeof r.kind === "string", r.kind as string, "layer block without kind");
  const layer = need(isCount(r.layer), r.layer as number, `${kind} block: layer must be a count`);
  if ((r.dtype ?? DTYPE) !== DTYPE) {
    throw new Error(`tx_magic: ${kind} layer ${layer} has dtype ${String(r.dtype)}; this renderer reads ${DTYPE}`);
  }
  const shape = r.shape as unknown[];
  need(Array.isArray(shape) && shape.length === 3 && shape.every(isCount), null, `${kind} layer ${layer}: shape must be [heads, queries, keys]`);
  const [h, q, k] = shape as number[];
  need(r.data !== undefined && r.data !== null, null, `${kind} layer ${layer} has no data`);
  const data = toFloat32(r.data as WireBytes);
  if (data.length !== h * q * k) {
    throw new Error(`tx_magic: ${kind} layer ${layer} holds ${data.length} values, its shape ${h}x${q}x${k} needs ${h * q * k}`);
  }
  return { kind, layer, shape: [h, q, k], data };
}

/** The kind named `name`; throws when the trace has no such kind. */
export function kindInfo(meta: Meta, name: string): KindInfo {
  const found = meta.kinds.find((k) => k.name === name);
  if (!found) {
    throw new Error(`tx_magic: this trace has no ${name} attention (it has ${meta.kinds.map((k) => k.name).join(", ")})`);
  }
  return found;
}

/** Query and key tokens of a kind. */
export function kindTokens(meta: Meta, kind: KindInfo): { queries: SequenceInfo; keys: SequenceInfo } {
  return { queries: meta.sequences[kind.queries], keys: meta.sequences[kind.keys] };
}

/**
 * The kind's mask as Q*K bytes, 1 = allowed, or null when everything is allowed.
 * Causal: a query sees keys up to and including itself.
 */
export function decodeMask(kind: KindInfo, q: number, k: number): Uint8Array | null {
  if (kind.mask === MASK_NONE) return null;
  const out = new Uint8Array(q * k);
  if (kind.mask === MASK_CAUSAL) {
    for (let i = 0; i < q; i++) out.fill(1, i * k, i * k + Math.min(k, i + 1));
    return out;
  }
  const src = kind.mask_data;
  if (!src || src.length !== q * k) {
    throw new Error(`tx_magic: kind ${kind.name}: explicit mask needs ${q * k} bytes, got ${src?.length ?? 0}`);
  }
  for (let i = 0; i < out.length; i++) out[i] = src[i] ? 1 : 0;
  return out;
}
