/**
 * Decoding what the wire carries (the interfaces of wire-schema.ts) into what the views read:
 * bytes in any form a host hands over, `_meta`, value and top-k blocks, masks, the image. Every
 * decoder takes `unknown`, reads it through `Unchecked<Wire...>` and throws a clear Error on
 * malformed data. The Python side: tx_magic/wire (its `decode_*` mirror these for tests).
 */

import type { WireBytes } from "./wire";
import {
  DTYPE, DTYPE_TOPK, DTYPE_UINT8, LAYOUT_DENSE, LAYOUT_LOWER, MASK_CAUSAL, MASK_EXPLICIT, MASK_NONE, META_IMAGE, WIRE_VERSION, type MaskType,
  type Unchecked, type WireBlockHeader, type WireImage, type WireKind, type WireMeta, type WireThumbnails,
  type WireInterventionInfo, type WireTokenSequence, type WireTopKBlock, type WireValueBlock,
} from "./wire-schema";
import { toBytes, toFloat32, toInt32 } from "./wire-bytes";

/** One token sequence ("input", "source", "target"), as it crosses. */
export type SequenceInfo = WireTokenSequence;

/**
 * One attention kind, decoded: its bytes as typed arrays; `streamed`, `pool` and `thumbnails`
 * may be absent in hand-made data (then: not streamed, pool 1, the views pool the layers).
 */
export interface KindInfo extends Omit<WireKind, "streamed" | "pool" | "thumbnails" | "mask_data" | "stats" | "user_stats"> {
  streamed?: boolean;
  pool?: number;
  thumbnails?: Thumbnails;
  /** For an explicit mask: Q*K bytes, 1 = allowed. */
  mask_data?: Uint8Array;
  /** Streamed kinds: per-head statistics from Python, name -> float32 (layer, head). */
  stats?: Record<string, Float32Array>;
  /** Statistics users registered in Python, name -> float32 (layer, head), in registration order. */
  user_stats?: Record<string, Float32Array>;
}

/** Every head's overview thumbnail: uint8 (layer, head, size, size), round(255 * max over its tile). */
export interface Thumbnails extends Omit<WireThumbnails, "data"> {
  data: Uint8Array;
}

/** The decoded `_meta` trait. */
export interface Meta extends Omit<WireMeta, "sequences" | "kinds" | "image"> {
  sequences: Record<string, SequenceInfo>;
  kinds: KindInfo[];
  /** The picture a vision model saw; absent for text. */
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

/** The decoded `_meta.image`: tokens first .. first + rows * cols - 1 of `sequence` are its patches. */
export interface ImageInfo extends Omit<WireImage, "png"> {
  png: Uint8Array;
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

/** `raw` as a wire object of type `T` still to be checked: only `T`'s keys can be read. */
export function unchecked<T>(raw: unknown, what: string): Unchecked<T> {
  need(isRecord(raw), null, `${what} is not an object`);
  return raw as Unchecked<T>;
}

function decodeSequence(raw: unknown, name: string): SequenceInfo {
  need(isRecord(raw), null, `sequence ${name} has no text list`);
  const s = raw as Unchecked<WireTokenSequence>;
  need(Array.isArray(s.text), null, `sequence ${name} has no text list`);
  const text = (s.text as unknown[]).map((t) => String(t));
  const list = <T>(value: unknown, of: (v: unknown) => T, fill: T, what: string): T[] => {
    const out = Array.isArray(value) ? value.map(of) : text.map(() => fill);
    need(out.length === text.length, null, `sequence ${name}: text and ${what} differ in length`);
    return out;
  };
  return {
    text, special: list(s.special, Boolean, false, "special"), segment: list(s.segment, Number, 0, "segment"),
    ids: list(s.ids, Number, -1, "ids"),
  };
}

function decodeThumbnails(raw: unknown, info: KindInfo): Thumbnails {
  const t = raw as Unchecked<WireThumbnails>;
  const name = info.name;
  need(isCount(t.size) && t.size >= 1, null, `kind ${name}: thumbnails need a size`);
  const size = t.size as number;
  const data = toBytes(need(t.data !== undefined && t.data !== null, t.data as WireBytes, `kind ${name}: thumbnails without data`));
  const want = info.layers * info.heads * size ** 2;
  need(data.length === want, null, `kind ${name}: thumbnails hold ${data.length} bytes, expected ${want}`);
  return { size, data };
}

function decodeKind(raw: unknown, i: number, sequences: Record<string, SequenceInfo>): KindInfo {
  need(isRecord(raw), null, `kind #${i} is not an object`);
  const r = raw as Unchecked<WireKind>;
  const name = need(typeof r.name === "string", r.name as string, `kind #${i} has no name`);
  need(isCount(r.layers) && isCount(r.heads), null, `kind ${name}: layers and heads must be counts`);
  const queries = String(r.queries), keys = String(r.keys);
  need(queries in sequences && keys in sequences, null, `kind ${name} names an unknown sequence`);
  const mask = r.mask ?? MASK_NONE;
  need(mask === MASK_NONE || mask === MASK_CAUSAL || mask === MASK_EXPLICIT, null, `kind ${name}: unknown mask ${String(mask)}`);
  const pool = r.pool ?? 1;
  need(isCount(pool) && pool >= 1, null, `kind ${name}: pool must be a positive count`);
  const info: KindInfo = {
    name, layers: r.layers as number, heads: r.heads as number, queries, keys, mask: mask as MaskType,
    streamed: r.streamed === true, pool: pool as number,
  };
  if (isRecord(r.thumbnails)) info.thumbnails = decodeThumbnails(r.thumbnails, info);
  const perHead = (record: Record<string, unknown>, what: string): Record<string, Float32Array> => {
    const out: Record<string, Float32Array> = {};
    for (const [stat, bytes] of Object.entries(record)) {
      const values = toFloat32(bytes as WireBytes);
      need(values.length === info.layers * info.heads, null, `kind ${name}: ${what} ${stat} has ${values.length} values, expected layers x heads`);
      out[stat] = values;
    }
    return out;
  };
  if (isRecord(r.stats)) info.stats = perHead(r.stats, "stats");
  if (isRecord(r.user_stats)) info.user_stats = perHead(r.user_stats, "user statistic");
  if (Array.isArray(r.head_types)) {
    const types = (r.head_types as unknown[]).map((row) => (Array.isArray(row) ? row.map((t) => String(t ?? "")) : []));
    need(types.length === info.layers && types.every((row) => row.length === info.heads), null, `kind ${name}: head_types must be layers x heads`);
    info.head_types = types;
  }
  if (mask === MASK_EXPLICIT) {
    need(r.mask_data !== undefined && r.mask_data !== null, null, `kind ${name}: explicit mask without mask_data`);
    const bytes = toBytes(r.mask_data as WireBytes);
    const q = sequences[queries].text.length, k = sequences[keys].text.length;
    need(bytes.length === q * k, null, `kind ${name}: mask_data has ${bytes.length} bytes, expected ${q}x${k}`);
    info.mask_data = bytes;
  }
  return info;
}

/** Validate and decode the `_meta` trait; throws a clear Error on a version mismatch. */
export function decodeMeta(raw: unknown): Meta {
  if (!isRecord(raw) || Object.keys(raw).length === 0) {
    throw new Error("tx_magic: no trace metadata received (the _meta trait is empty)");
  }
  const r = raw as Unchecked<WireMeta>;
  if (r.version !== WIRE_VERSION) {
    throw new Error(
      `tx_magic: wire format version mismatch: Python sent version ${String(r.version)}, ` +
        `this renderer reads version ${WIRE_VERSION}. The installed Python package and its ` +
        "bundled renderer disagree: reinstall tx_magic, restart the kernel and reload the page.",
    );
  }
  const model = need(typeof r.model === "string", r.model as string, "model must be a string");
  const warnings = need(Array.isArray(r.warnings), r.warnings as unknown[], "warnings must be a list").map(String);
  need(isRecord(r.sequences), null, "sequences must be an object");
  const sequences: Record<string, SequenceInfo> = {};
  for (const [name, seq] of Object.entries(r.sequences as Record<string, unknown>)) sequences[name] = decodeSequence(seq, name);
  need(Array.isArray(r.kinds) && (r.kinds as unknown[]).length > 0, null, "kinds must be a non-empty list");
  const kinds = (r.kinds as unknown[]).map((k, i) => decodeKind(k, i, sequences));
  const image = r[META_IMAGE] === undefined || r[META_IMAGE] === null ? undefined : decodeImage(r[META_IMAGE], sequences);
  // What was done to the run (interventions.ts checks it where it is read).
  const intervention = isRecord(r.intervention) ? { intervention: r.intervention as unknown as WireInterventionInfo } : {};
  const analyses = decodeAnalyses(r.analyses, kinds);
  return {
    version: WIRE_VERSION, model, warnings, sequences, kinds, ...(image ? { image } : {}), ...(analyses ? { analyses } : {}),
    ...intervention,
  };
}

/** `_meta.analyses`: per known kind, the names of what the kernel computes on request (unknown kinds dropped). */
function decodeAnalyses(raw: unknown, kinds: KindInfo[]): Record<string, string[]> | undefined {
  if (raw === undefined || raw === null) return undefined;
  need(isRecord(raw), null, "analyses must be an object");
  const out: Record<string, string[]> = {};
  for (const [kind, names] of Object.entries(raw as Record<string, unknown>)) {
    need(Array.isArray(names), null, `analyses of ${kind} must be a list`);
    if (kinds.some((k) => k.name === kind)) out[kind] = (names as unknown[]).map(String);
  }
  return out;
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

/** Values per head of a LAYOUT_LOWER block of `rows` rows: row r holds r + 1. */
export function lowerCells(rows: number): number {
  return (rows * (rows + 1)) / 2;
}

/**
 * LAYOUT_LOWER uint8 values (head, row r: its first r + 1 values, rows packed) dequantized into the
 * dense (head, row, col) layout, zeros above the diagonal: one pass over the bytes.
 */
export function dequantizeLower(bytes: Uint8Array, scale: Float32Array, heads: number, rows: number): Float32Array {
  const out = new Float32Array(heads * rows * rows);
  let at = 0;
  for (let r = 0; r < heads * rows; r++) {
    const f = scale[r] / 255, base = r * rows, end = base + (r % rows) + 1;
    for (let o = base; o < end; o++) out[o] = bytes[at++] * f;
  }
  return out;
}

/** LAYOUT_LOWER float32 values expanded into the dense (head, row, col) layout, zeros above the diagonal. */
export function expandLower(packed: Float32Array, heads: number, rows: number): Float32Array {
  const out = new Float32Array(heads * rows * rows);
  let at = 0;
  for (let r = 0; r < heads * rows; r++) {
    const n = (r % rows) + 1;
    out.set(packed.subarray(at, at + n), r * rows);
    at += n;
  }
  return out;
}

/** The largest absolute error of a uint8 block with these row scales (round-to-nearest: scale / 510). */
export function quantizationError(scale: Float32Array): number {
  let max = 0;
  for (let i = 0; i < scale.length; i++) if (scale[i] > max) max = scale[i];
  return max / 510;
}

function shapeOf(r: Unchecked<WireBlockHeader>, what: string): [number, number, number] {
  const shape = r.shape as unknown[];
  need(Array.isArray(shape) && shape.length === 3 && shape.every(isCount), null, `${what}: shape must be [heads, queries, keys]`);
  return shape as [number, number, number];
}

/**
 * Decode one value block (an `_layers` entry, or a REQUEST_LAYER / REQUEST_BLOCK reply's content
 * with its buffers [data] or [data, scale] as `buffers`): float32, or uint8 dequantized; whole,
 * pooled or windowed.
 */
export function decodeBlock(raw: unknown, buffers?: readonly unknown[]): LayerBlock {
  const r = unchecked<WireValueBlock>(raw, "a layer block");
  const kind = need(typeof r.kind === "string", r.kind as string, "layer block without kind");
  const layer = need(isCount(r.layer), r.layer as number, `${kind} block: layer must be a count`);
  const dtype = r.dtype ?? DTYPE;
  if (dtype !== DTYPE && dtype !== DTYPE_UINT8) {
    throw new Error(`tx_magic: ${kind} layer ${layer} has dtype ${String(dtype)}; this renderer reads ${DTYPE} or ${DTYPE_UINT8}`);
  }
  const [h, q, k] = shapeOf(r, `${kind} layer ${layer}`);
  const pool = r.pool ?? 1, q0 = r.q0 ?? 0, k0 = r.k0 ?? 0;
  need(isCount(pool) && pool >= 1 && isCount(q0) && isCount(k0), null, `${kind} layer ${layer}: pool, q0 and k0 must be counts`);
  const layout = r.layout ?? LAYOUT_DENSE;
  need(layout === LAYOUT_DENSE || layout === LAYOUT_LOWER, null, `${kind} layer ${layer}: unknown layout ${String(layout)}`);
  const lower = layout === LAYOUT_LOWER;
  need(!lower || q === k, null, `${kind} layer ${layer}: a ${LAYOUT_LOWER} block must be square, not ${q}x${k}`);
  const cells = h * (lower ? lowerCells(q) : q * k);
  const rawData = buffers?.[0] ?? r.data;
  need(rawData !== undefined && rawData !== null, null, `${kind} layer ${layer} has no data`);
  const out: LayerBlock = { kind, layer, shape: [h, q, k], data: new Float32Array(0), pool: pool as number, q0: q0 as number, k0: k0 as number, exact: true };
  const needs = `its shape ${h}x${q}x${k}${lower ? " (lower)" : ""} needs ${cells}`;
  if (dtype === DTYPE_UINT8) {
    const bytes = toBytes(rawData as WireBytes);
    const rawScale = buffers?.[1] ?? r.scale;
    need(rawScale !== undefined && rawScale !== null, null, `${kind} layer ${layer}: uint8 data without scale`);
    const scale = toFloat32(rawScale as WireBytes);
    if (bytes.length !== cells || scale.length !== h * q) {
      throw new Error(`tx_magic: ${kind} layer ${layer} holds ${bytes.length} bytes and ${scale.length} scales, ${needs} and ${h * q}`);
    }
    out.data = lower ? dequantizeLower(bytes, scale, h, q) : dequantize(bytes, scale, h, q, k);
    out.exact = false;
    out.maxError = quantizationError(scale);
    return out;
  }
  const values = toFloat32(rawData as WireBytes);
  if (values.length !== cells) {
    throw new Error(`tx_magic: ${kind} layer ${layer} holds ${values.length} values, ${needs}`);
  }
  out.data = lower ? expandLower(values, h, q) : values;
  return out;
}

/** Decode a top-k block (an `_layers` entry with dtype "topk", or a REQUEST_TOPK reply's content with buffers [index, data]). */
export function decodeTopK(raw: unknown, buffers?: readonly unknown[]): TopKBlock {
  const r = unchecked<WireTopKBlock>(raw, "a top-k block");
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

/** Validate and decode `_meta.image` against the decoded sequences. */
export function decodeImage(raw: unknown, sequences: Record<string, SequenceInfo>): ImageInfo {
  need(isRecord(raw), null, "image must be an object");
  const r = raw as Unchecked<WireImage>;
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
