/**
 * The wire's requests beyond the weights, mirroring tx_magic/wire/schema_analyses.py: value norms for
 * the value-weighted views, one query's query and key vectors (the Q/K tab), the information-flow
 * graph (the Flow tab), and `Meta.analyses`, which of them a kind can answer. Declarations, their key
 * records (gathered into wire-schema.ts's SCHEMA) and the decoders of the three replies.
 */

import type { Fields } from "./wire-schema";
import { toBytes, toFloat32 } from "./wire-bytes";

export const REQUEST_VALUE_NORMS = "get_value_norms";
export const REQUEST_QUERIES_KEYS = "get_queries_keys";
export const REQUEST_FLOW = "get_flow";
export const ANALYSIS_VALUE = "value";
export const ANALYSIS_QK = "qk";
export const ANALYSIS_FLOW = "flow";
/** Edge types of a flow reply, by the index its edges use. */
export const FLOW_EDGE_TYPES = ["attention", "head", "residual", "mlp", "mlp_residual"] as const;
export const MAX_FLOW_EDGES = 200_000;

export type FlowEdgeType = (typeof FLOW_EDGE_TYPES)[number];

export interface WireValueNormsRequest {
  kind: string;
}

/** Buffers [norms f32 (L, H, K), totals f32 (L, H, Q), thumbnails u8 (L, H, T, T)]. */
export interface WireValueNormsReply {
  kind: string;
  layers: number;
  heads: number;
  queries: number;
  keys: number;
  thumbnail_size: number;
}

export interface WireQueriesKeysRequest {
  kind: string;
  layer: number;
  query: number;
}

/** Buffers [q (H, d), k (Hkv, K, d)], + the same before the rotation when `rotary`. */
export interface WireQueriesKeysReply {
  kind: string;
  layer: number;
  query: number;
  heads: number;
  kv_heads: number;
  keys: number;
  dim: number;
  scale: number;
  groups: number[];
  rotary: boolean;
}

export interface WireFlowRequest {
  kind: string;
  /** The token whose routes to draw, or -1 for every token's kept edges. */
  token: number;
  threshold: number;
}

/** `edges`: [layer, type (index into FLOW_EDGE_TYPES), head (-1: none), source, target, weight] each. */
export interface WireFlowReply {
  kind: string;
  token: number;
  threshold: number;
  layers: number;
  edges: number[][];
}

const R = "required";

export const VALUE_NORMS_REQUEST_FIELDS = { kind: R } satisfies Fields<WireValueNormsRequest>;
export const VALUE_NORMS_REPLY_FIELDS = {
  kind: R, layers: R, heads: R, queries: R, keys: R, thumbnail_size: R,
} satisfies Fields<WireValueNormsReply>;
export const QUERIES_KEYS_REQUEST_FIELDS = { kind: R, layer: R, query: R } satisfies Fields<WireQueriesKeysRequest>;
export const QUERIES_KEYS_REPLY_FIELDS = {
  kind: R, layer: R, query: R, heads: R, kv_heads: R, keys: R, dim: R, scale: R, groups: R, rotary: R,
} satisfies Fields<WireQueriesKeysReply>;
export const FLOW_REQUEST_FIELDS = { kind: R, token: R, threshold: R } satisfies Fields<WireFlowRequest>;
export const FLOW_REPLY_FIELDS = { kind: R, token: R, threshold: R, layers: R, edges: R } satisfies Fields<WireFlowReply>;

/** The records above, under the names of their TypedDicts (wire-schema.ts's SCHEMA takes them in). */
export const ANALYSES_SCHEMA = {
  ValueNormsRequest: VALUE_NORMS_REQUEST_FIELDS, ValueNormsReply: VALUE_NORMS_REPLY_FIELDS,
  QueriesKeysRequest: QUERIES_KEYS_REQUEST_FIELDS, QueriesKeysReply: QUERIES_KEYS_REPLY_FIELDS,
  FlowRequest: FLOW_REQUEST_FIELDS, FlowReply: FLOW_REPLY_FIELDS,
};

// -- decoded replies ------------------------------------------------------------------------------

/** A kind's value norms: n (L, H, K), each row's weighted total Z (L, H, Q), weighted thumbnails. */
export interface ValueNorms {
  kind: string;
  layers: number;
  heads: number;
  queries: number;
  keys: number;
  norms: Float32Array;
  totals: Float32Array;
  thumbnailSize: number;
  thumbnails: Uint8Array;
}

/** One query's vector per head and every key's per key/value head, as the model used them. */
export interface QueriesKeys {
  kind: string;
  layer: number;
  query: number;
  heads: number;
  kvHeads: number;
  keys: number;
  dim: number;
  scale: number;
  /** The key/value head each query head reads. */
  groups: number[];
  /** (H, d) and (Hkv, K, d), row-major. */
  q: Float32Array;
  k: Float32Array;
  /** The same before the rotary embedding (rotary models only). */
  unrotated: { q: Float32Array; k: Float32Array } | null;
}

export interface FlowEdge {
  layer: number;
  type: FlowEdgeType;
  /** The head of a "head" edge, the strongest head of an "attention" edge, -1 otherwise. */
  head: number;
  source: number;
  target: number;
  weight: number;
}

export interface FlowGraph {
  kind: string;
  token: number;
  threshold: number;
  layers: number;
  edges: FlowEdge[];
}

function record(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`tx_magic: ${what} is not an object`);
  return raw as Record<string, unknown>;
}

function count(r: Record<string, unknown>, key: string, what: string): number {
  const v = r[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`tx_magic: ${what}: ${key} must be a count`);
  return v;
}

function sized<T extends { length: number }>(array: T, n: number, what: string): T {
  if (array.length !== n) throw new Error(`tx_magic: ${what} holds ${array.length} values, expected ${n}`);
  return array;
}

/** A REQUEST_VALUE_NORMS reply and its buffers. */
export function decodeValueNorms(raw: unknown, buffers: readonly unknown[]): ValueNorms {
  const r = record(raw, "a value-norms reply");
  const what = "value norms";
  const [layers, heads, queries, keys, size] = ["layers", "heads", "queries", "keys", "thumbnail_size"].map((k) => count(r, k, what));
  if (buffers.length !== 3) throw new Error(`tx_magic: ${what} came with ${buffers.length} buffers, expected 3`);
  return {
    kind: String(r.kind), layers, heads, queries, keys, thumbnailSize: size,
    norms: sized(toFloat32(buffers[0] as never), layers * heads * keys, `${what} norms`),
    totals: sized(toFloat32(buffers[1] as never), layers * heads * queries, `${what} totals`),
    thumbnails: sized(toBytes(buffers[2] as never), layers * heads * size * size, `${what} thumbnails`),
  };
}

/** A REQUEST_QUERIES_KEYS reply and its buffers. */
export function decodeQueriesKeys(raw: unknown, buffers: readonly unknown[]): QueriesKeys {
  const r = record(raw, "a queries/keys reply");
  const what = "queries and keys";
  const [layer, query, heads, kvHeads, keys, dim] = ["layer", "query", "heads", "kv_heads", "keys", "dim"].map((k) => count(r, k, what));
  const groups = Array.isArray(r.groups) ? r.groups.map(Number) : [];
  if (groups.length !== heads || groups.some((g) => !Number.isInteger(g) || g < 0 || g >= kvHeads)) {
    throw new Error(`tx_magic: ${what}: groups must name a key/value head for each of ${heads} heads`);
  }
  const rotary = r.rotary === true;
  if (buffers.length !== (rotary ? 4 : 2)) throw new Error(`tx_magic: ${what} came with ${buffers.length} buffers`);
  const q = (i: number) => sized(toFloat32(buffers[i] as never), heads * dim, `${what} q`);
  const k = (i: number) => sized(toFloat32(buffers[i] as never), kvHeads * keys * dim, `${what} k`);
  return {
    kind: String(r.kind), layer, query, heads, kvHeads, keys, dim, scale: Number(r.scale), groups, q: q(0), k: k(1),
    unrotated: rotary ? { q: q(2), k: k(3) } : null,
  };
}

/** A REQUEST_FLOW reply. */
export function decodeFlow(raw: unknown): FlowGraph {
  const r = record(raw, "a flow reply");
  if (!Array.isArray(r.edges)) throw new Error("tx_magic: a flow reply without edges");
  const edges = r.edges.map((e: unknown): FlowEdge => {
    const [layer, type, head, source, target, weight] = Array.isArray(e) ? e.map(Number) : [];
    const name = FLOW_EDGE_TYPES[type];
    if (name === undefined || ![layer, head, source, target, weight].every(Number.isFinite)) {
      throw new Error(`tx_magic: a flow edge ${JSON.stringify(e)} is not [layer, type, head, source, target, weight]`);
    }
    return { layer, type: name, head, source, target, weight };
  });
  return { kind: String(r.kind), token: Number(r.token), threshold: Number(r.threshold), layers: count(r, "layers", "flow"), edges };
}
