/**
 * The wire format between Python and the renderer: a one-to-one mirror of tx_magic/wire.py
 * (authoritative). A Python test parses the `export const NAME = ...` lines below and checks
 * they match the Python constants and key tuples, so keep each on one line.
 *
 * `_meta` (JSON): version, model, warnings, sequences {name: {text, special, segment, ids}}, kinds [...].
 * `_layers`: blocks {kind, layer, dtype: "float32" | "uint8", shape: [H, R, C], pool, q0, k0, data,
 * scale?} (whole layers, pooled overviews p x p max-tiles, or windows at (q0, k0)) and top-k
 * blocks {kind, layer, dtype: "topk", shape: [H, Q, k], index, data}. float32 data is little-endian,
 * row-major (head, row, col); uint8 data means byte / 255 * scale[head, row] (absolute error
 * <= scale / 510). Explicit masks travel as Q*K uint8 in the kind's `mask_data` (1 = allowed).
 * Kinds carry `streamed`, `pool` (finest whole-layer pool), `thumbnails` (uint8 (L, H, T, T) tile
 * maxima) and, for streamed kinds, `stats`. Other data is fetched with custom messages:
 * REQUEST_LAYER (whole layer at a dtype and pool), REQUEST_BLOCK (exact float32 window),
 * REQUEST_TOPK; every request may carry an "id" echoed in the reply. See /work spec wire-v2.
 * Python asks a view for a picture with REQUEST_EXPORT; the view answers REPLY_EXPORT with the
 * file as the message's buffer (at most EXPORT_MAX_BYTES), or REPLY_EXPORT_ERROR.
 */

export const WIRE_VERSION = 2;
export const EAGER_BUDGET = 8 * 1024 * 1024;
export const DTYPE = "float32";
export const DTYPE_UINT8 = "uint8";
export const DTYPE_TOPK = "topk";
export const MAX_BLOCK_CELLS = 1024 * 1024;
export const THUMBNAIL_SIZE = 32;

export const MASK_NONE = "none";
export const MASK_CAUSAL = "causal";
export const MASK_EXPLICIT = "explicit";

export const REQUEST_LAYER = "get_layer";
export const REPLY_LAYER = "layer";
export const REPLY_ERROR = "error";
export const REQUEST_BLOCK = "get_block";
export const REPLY_BLOCK = "block";
export const REQUEST_TOPK = "get_topk";
export const REPLY_TOPK = "topk";

export const REQUEST_EXPORT = "export";
export const REPLY_EXPORT = "exported";
export const REPLY_EXPORT_ERROR = "export_error";
export const EXPORT_FORMATS = ["png", "svg"] as const;
export const EXPORT_MAX_BYTES = 9 * 1024 * 1024;

export const META_KEYS = ["version", "model", "warnings", "sequences", "kinds"] as const;
export const SEQUENCE_KEYS = ["text", "special", "segment", "ids"] as const;
export const KIND_KEYS = ["name", "layers", "heads", "queries", "keys", "mask", "streamed", "pool", "thumbnails"] as const;
export const BLOCK_KEYS = ["kind", "layer", "dtype", "shape", "pool", "q0", "k0", "data"] as const;
export const TOPK_KEYS = ["kind", "layer", "dtype", "shape", "index", "data"] as const;
export const THUMBNAIL_KEYS = ["size", "data"] as const;

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
  /** Weights kept reduced in the kernel: whole layers only pooled, exact cells only as windows. */
  streamed?: boolean;
  /** The finest pool a whole-layer request can give (1: full resolution). */
  pool?: number;
  /** uint8 (layer, head, size, size) tile maxima x 255, or undefined (older data: pool the layers). */
  thumbnails?: Thumbnails;
  /** Streamed kinds: per-head statistics from Python, name -> float32 (layer, head). */
  stats?: Record<string, Float32Array>;
  /** Streamed kinds: each head's label from Python, [layer][head] ("" for none). */
  head_types?: string[][];
}

/** Every head's overview thumbnail, sent with the metadata. */
export interface Thumbnails {
  /** Tiles per side (min(THUMBNAIL_SIZE, Q, K)). */
  size: number;
  /** uint8 (layer, head, size, size); a value is round(255 * max over its tile). */
  data: Uint8Array;
}

/** The decoded `_meta` trait. */
export interface Meta {
  version: number;
  model: string;
  warnings: string[];
  sequences: Record<string, SequenceInfo>;
  kinds: KindInfo[];
  /** The picture a vision model saw (see the "images" section below); absent for text. */
  image?: ImageInfo;
}

/**
 * One decoded block: all heads of one layer of one kind, (head, row, col) row-major, float32
 * (uint8 blocks arrive dequantized). A whole layer at full resolution has pool 1 and q0 = k0 = 0;
 * a pooled overview holds the max of each pool x pool tile; a window starts at (q0, k0).
 */
export interface LayerBlock {
  kind: string;
  layer: number;
  shape: [heads: number, queries: number, keys: number];
  data: Float32Array;
  /** Tokens per tile side (1, the default: one value per cell). */
  pool?: number;
  /** First query / key token covered (default 0). */
  q0?: number;
  k0?: number;
  /** False when the values were quantized to uint8 (within `maxError` of the exact ones). */
  exact?: boolean;
  /** For quantized blocks: the largest absolute error of any value (max scale / 510). */
  maxError?: number;
}

/** Each query row's k largest weights, largest first (arcs for streamed kinds). */
export interface TopKBlock {
  kind: string;
  layer: number;
  shape: [heads: number, queries: number, k: number];
  /** Key token of each weight, int32 (head, query, rank). */
  index: Int32Array;
  /** The weights, float32 (head, query, rank). */
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
  if (like?.buffer && typeof like.byteLength === "number") {
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
    const streamed = r.streamed === true;
    const pool = r.pool ?? 1;
    need(isCount(pool) && pool >= 1, null, `kind ${name}: pool must be a positive count`);
    const info: KindInfo = {
      name, layers: r.layers as number, heads: r.heads as number, queries, keys, mask: mask as MaskType,
      streamed, pool: pool as number,
    };
    const q = sequences[queries].text.length, kk = sequences[keys].text.length;
    if (isRecord(r.thumbnails)) {
      const t = r.thumbnails;
      need(isCount(t.size) && t.size >= 1, null, `kind ${name}: thumbnails need a size`);
      const data = toBytes(need(t.data !== undefined && t.data !== null, t.data as WireBytes, `kind ${name}: thumbnails without data`));
      const want = info.layers * info.heads * (t.size as number) ** 2;
      need(data.length === want, null, `kind ${name}: thumbnails hold ${data.length} bytes, expected ${want}`);
      info.thumbnails = { size: t.size as number, data };
    }
    if (isRecord(r.stats)) {
      const stats: Record<string, Float32Array> = {};
      for (const [stat, bytes] of Object.entries(r.stats)) {
        const values = toFloat32(bytes as WireBytes);
        need(values.length === info.layers * info.heads, null, `kind ${name}: stats ${stat} has ${values.length} values, expected layers x heads`);
        stats[stat] = values;
      }
      info.stats = stats;
    }
    if (Array.isArray(r.head_types)) {
      const types = (r.head_types as unknown[]).map((row) => (Array.isArray(row) ? row.map((t) => String(t ?? "")) : []));
      need(types.length === info.layers && types.every((row) => row.length === info.heads), null, `kind ${name}: head_types must be layers x heads`);
      info.head_types = types;
    }
    if (mask === MASK_EXPLICIT) {
      need(r.mask_data !== undefined && r.mask_data !== null, null, `kind ${name}: explicit mask without mask_data`);
      const bytes = toBytes(r.mask_data as WireBytes);
      need(bytes.length === q * kk, null, `kind ${name}: mask_data has ${bytes.length} bytes, expected ${q}x${kk}`);
      info.mask_data = bytes;
    }
    return info;
  });
  const image = raw[META_IMAGE] === undefined || raw[META_IMAGE] === null ? undefined : decodeImage(raw[META_IMAGE], sequences);
  return { version: WIRE_VERSION, model, warnings, sequences, kinds, ...(image ? { image } : {}) };
}

/** uint8 values (head, row, col) as float32: byte / 255 * scale[head * rows + row]. */
export function dequantize(bytes: Uint8Array, scale: Float32Array, heads: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(heads * rows * cols);
  for (let r = 0; r < heads * rows; r++) {
    const f = scale[r] / 255, base = r * cols;
    for (let c = 0; c < cols; c++) out[base + c] = bytes[base + c] * f;
  }
  return out;
}

/** The largest absolute error of a uint8 block with these row scales (round-to-nearest: scale / 510). */
export function quantizationError(scale: Float32Array): number {
  let max = 0;
  for (let i = 0; i < scale.length; i++) if (scale[i] > max) max = scale[i];
  return max / 510;
}

function shapeOf(r: Record<string, unknown>, what: string): [number, number, number] {
  const shape = r.shape as unknown[];
  need(Array.isArray(shape) && shape.length === 3 && shape.every(isCount), null, `${what}: shape must be [heads, queries, keys]`);
  return shape as [number, number, number];
}

/**
 * Decode one block (an `_layers` entry, or a REPLY_LAYER / REPLY_BLOCK message with its buffers
 * [data] or [data, scale] as `buffers`): float32, or uint8 dequantized; whole, pooled or windowed.
 */
export function decodeBlock(raw: unknown, buffers?: readonly unknown[]): LayerBlock {
  need(isRecord(raw), null, "a layer block is not an object");
  const r = raw as Record<string, unknown>;
  const kind = need(typeof r.kind === "string", r.kind as string, "layer block without kind");
  const layer = need(isCount(r.layer), r.layer as number, `${kind} block: layer must be a count`);
  const dtype = r.dtype ?? DTYPE;
  if (dtype !== DTYPE && dtype !== DTYPE_UINT8) {
    throw new Error(`tx_magic: ${kind} layer ${layer} has dtype ${String(dtype)}; this renderer reads ${DTYPE} or ${DTYPE_UINT8}`);
  }
  const [h, q, k] = shapeOf(r, `${kind} layer ${layer}`);
  const pool = r.pool ?? 1, q0 = r.q0 ?? 0, k0 = r.k0 ?? 0;
  need(isCount(pool) && pool >= 1 && isCount(q0) && isCount(k0), null, `${kind} layer ${layer}: pool, q0 and k0 must be counts`);
  const rawData = buffers?.[0] ?? r.data;
  need(rawData !== undefined && rawData !== null, null, `${kind} layer ${layer} has no data`);
  let data: Float32Array;
  const out: LayerBlock = { kind, layer, shape: [h, q, k], data: new Float32Array(0), pool: pool as number, q0: q0 as number, k0: k0 as number, exact: true };
  if (dtype === DTYPE_UINT8) {
    const bytes = toBytes(rawData as WireBytes);
    const rawScale = buffers?.[1] ?? r.scale;
    need(rawScale !== undefined && rawScale !== null, null, `${kind} layer ${layer}: uint8 data without scale`);
    const scale = toFloat32(rawScale as WireBytes);
    if (bytes.length !== h * q * k || scale.length !== h * q) {
      throw new Error(`tx_magic: ${kind} layer ${layer} holds ${bytes.length} bytes and ${scale.length} scales, its shape ${h}x${q}x${k} needs ${h * q * k} and ${h * q}`);
    }
    data = dequantize(bytes, scale, h, q, k);
    out.exact = false;
    out.maxError = quantizationError(scale);
  } else {
    data = toFloat32(rawData as WireBytes);
    if (data.length !== h * q * k) {
      throw new Error(`tx_magic: ${kind} layer ${layer} holds ${data.length} values, its shape ${h}x${q}x${k} needs ${h * q * k}`);
    }
  }
  out.data = data;
  return out;
}

/** Little-endian int32 bytes as an Int32Array (a view when aligned, else a copy). */
export function toInt32(buf: WireBytes): Int32Array {
  const bytes = toBytes(buf);
  if (bytes.byteLength % 4 !== 0) throw new Error(`tx_magic: int32 data has ${bytes.byteLength} bytes, not a multiple of 4`);
  const n = bytes.byteLength / 4;
  if (!LITTLE_ENDIAN_HOST) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Int32Array.from({ length: n }, (_, i) => view.getInt32(i * 4, true));
  }
  if (bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, n);
  return new Int32Array(bytes.slice().buffer, 0, n);
}

/** Decode a top-k block (an `_layers` entry with dtype "topk", or a REPLY_TOPK with buffers [index, data]). */
export function decodeTopK(raw: unknown, buffers?: readonly unknown[]): TopKBlock {
  need(isRecord(raw), null, "a top-k block is not an object");
  const r = raw as Record<string, unknown>;
  const kind = need(typeof r.kind === "string", r.kind as string, "top-k block without kind");
  const layer = need(isCount(r.layer), r.layer as number, `${kind} top-k block: layer must be a count`);
  const [h, q, k] = shapeOf(r, `${kind} top-k ${layer}`);
  const rawIndex = buffers?.[0] ?? r.index, rawData = buffers?.[1] ?? r.data;
  need(rawIndex != null && rawData != null, null, `${kind} top-k ${layer} needs index and data`);
  const index = toInt32(rawIndex as WireBytes), data = toFloat32(rawData as WireBytes);
  if (index.length !== h * q * k || data.length !== h * q * k) {
    throw new Error(`tx_magic: ${kind} top-k ${layer} holds ${index.length} indices and ${data.length} weights, its shape ${h}x${q}x${k} needs ${h * q * k}`);
  }
  return { kind, layer, shape: [h, q, k], index, data };
}

/** Whether a raw `_layers` entry is a top-k block. */
export function isTopK(raw: unknown): boolean {
  return isRecord(raw) && raw.dtype === DTYPE_TOPK;
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

// ---------------------------------------------------------------------------------------------
// Model internals: hidden states, logit lens, next-token logits, generation (issue #6).
// Mirror of the "model internals" section at the end of tx_magic/wire.py; decoded by internals.ts.
// `_internals` (JSON, {} when none): {hidden: {layers, tokens, norms, cosines}, lens: {layers,
// tokens, k}, logits: {position, data}, vocab: [str], generation: {prompt, steps, sample}}.
// Rows of hidden/lens: embeddings, then each layer. Other positions' logits: REQUEST_LOGITS.
// The lens is computed on request: {type: REQUEST_LENS, id, positions} (at most MAX_LENS_POSITIONS)
// -> {type: REPLY_LENS, id, positions, k} + buffers [int32 ids, float32 probs], each
// (layers + 1) x positions x k row-major; or {type: REPLY_LENS_ERROR, id, message}.
// ---------------------------------------------------------------------------------------------

export const REQUEST_LOGITS = "get_logits";
export const REPLY_LOGITS = "logits";
export const REPLY_LOGITS_ERROR = "logits_error";
export const REQUEST_LENS = "get_lens";
export const REPLY_LENS = "lens";
export const REPLY_LENS_ERROR = "lens_error";
export const MAX_LENS_POSITIONS = 256;
export const INTERNALS_KEYS = ["hidden", "lens", "logits", "vocab", "generation"] as const;
export const HIDDEN_KEYS = ["layers", "tokens", "norms", "cosines", "last_normed"] as const;
export const LENS_KEYS = ["layers", "tokens", "k"] as const;
export const LENS_REPLY_KEYS = ["type", "id", "positions", "k"] as const;
export const LOGITS_KEYS = ["position", "data"] as const;
export const GENERATION_KEYS = ["prompt", "steps", "sample"] as const;

// ---------------------------------------------------------------------------------------------
// Images (issue #6): the picture a ViT-style model saw. Mirror of the "images" section at the end
// of tx_magic/wire.py. `_meta.image` (only when the trace has one): {png: bytes, width, height,
// rows, cols, sequence, first}: tokens first .. first + rows*cols - 1 of `sequence` are the
// patches, row by row, over the width x height picture.
// ---------------------------------------------------------------------------------------------

export const META_IMAGE = "image";
export const IMAGE_KEYS = ["png", "width", "height", "rows", "cols", "sequence", "first"] as const;

/** The decoded `_meta.image`. */
export interface ImageInfo {
  png: Uint8Array;
  width: number;
  height: number;
  rows: number;
  cols: number;
  /** Name of the sequence whose tokens are the patches. */
  sequence: string;
  /** Index of the first patch token (the tokens before it are [CLS] and the like). */
  first: number;
}

/** Validate and decode `_meta.image` against the decoded sequences. */
export function decodeImage(raw: unknown, sequences: Record<string, SequenceInfo>): ImageInfo {
  need(isRecord(raw), null, "image must be an object");
  const r = raw as Record<string, unknown>;
  for (const key of ["width", "height", "rows", "cols", "first"] as const) {
    need(isCount(r[key]), null, `image.${key} must be a count`);
  }
  const sequence = String(r.sequence);
  need(sequence in sequences, null, `image names an unknown sequence ${sequence}`);
  const [rows, cols, first] = [r.rows as number, r.cols as number, r.first as number];
  const n = sequences[sequence].text.length;
  need(rows > 0 && cols > 0 && first + rows * cols <= n, null, `image: ${rows}x${cols} patches from token ${first} do not fit ${n} tokens`);
  need(r.png !== undefined && r.png !== null, null, "image without png");
  return { png: toBytes(r.png as WireBytes), width: r.width as number, height: r.height as number, rows, cols, sequence, first };
}
