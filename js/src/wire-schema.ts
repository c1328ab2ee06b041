/**
 * The wire between Python and the renderer, declared once on this side: the constants and an
 * interface for every JSON object that crosses, mirroring the TypedDicts of
 * tx_magic/wire/schema.py (whose docstring describes the layout). wire-decode.ts reads raw
 * objects through these interfaces (`Unchecked<T>`), rpc.ts sends the requests.
 *
 * Parity: each interface has a runtime record of its keys (`*_FIELDS`, `satisfies Fields<T>`: tsc
 * rejects a record that misses, adds or mis-marks a key), gathered in SCHEMA under the Python
 * TypedDict's name. js/tests/wire-schema.test.ts checks SCHEMA and the constants below against
 * what Python declares (the wire fixture written by tests/make_wire_fixture.py), so a field or
 * constant added on one side only fails a test.
 */

import type { WireBytes } from "./wire";
import { ANALYSES_SCHEMA } from "./wire-analyses";

export const WIRE_VERSION = 3;
export const EAGER_BUDGET = 8 * 1024 * 1024;
export const MAX_BLOCK_CELLS = 1024 * 1024;
export const THUMBNAIL_SIZE = 32;
export const MAX_LENS_POSITIONS = 256;

export const DTYPE = "float32";
export const DTYPE_UINT8 = "uint8";
export const DTYPE_TOPK = "topk";

export const LAYOUT_DENSE = "dense";
export const LAYOUT_LOWER = "lower";

export const MASK_NONE = "none";
export const MASK_CAUSAL = "causal";
export const MASK_EXPLICIT = "explicit";

export const META_IMAGE = "image";

export const REQUEST_LAYER = "get_layer";
export const REQUEST_BLOCK = "get_block";
export const REQUEST_TOPK = "get_topk";
export const REQUEST_LOGITS = "get_logits";
export const REQUEST_LENS = "get_lens";
export const REQUEST_EXPORT = "export";
export const REQUEST_ABLATE = "ablate";
export const REQUEST_EDIT = "edit";
export const REQUEST_RESTORE = "restore";
export const ABLATIONS = ["zero", "mean"] as const;
export const REPLY = "reply";
export const REPLY_ERROR = "error";

export const EXPORT_FORMATS = ["png", "svg"] as const;
/** Largest export a view sends to the kernel (the server drops browser messages over 10 MiB). */
export const EXPORT_MAX_BYTES = 9 * 1024 * 1024;
/** Best inputs a census sends per head and pattern. */
export const CENSUS_BEST = 3;

export type MaskType = typeof MASK_NONE | typeof MASK_CAUSAL | typeof MASK_EXPLICIT;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

// -- the traits -------------------------------------------------------------------------------

/** One token sequence ("input", "source", "target"). */
export interface WireTokenSequence {
  text: string[];
  special: boolean[];
  /** 0 for text A, 1 for text B of a sentence pair. */
  segment: number[];
  /** Token ids (-1 where unknown); head types use them to find repeats (induction). */
  ids: number[];
}

export interface WireThumbnails {
  /** Tiles per side (min(THUMBNAIL_SIZE, Q, K)). */
  size: number;
  data: WireBytes;
}

/** One attention kind ("self", "encoder", "decoder", "cross") and where its tokens come from. */
export interface WireKind {
  name: string;
  layers: number;
  heads: number;
  /** Name of the sequence the queries come from. */
  queries: string;
  /** Name of the sequence the keys come from. */
  keys: string;
  mask: MaskType;
  /** Weights kept reduced in the kernel: whole layers only pooled, exact cells only as windows. */
  streamed: boolean;
  /** The finest pool a whole-layer request can give (1: full resolution). */
  pool: number;
  thumbnails: WireThumbnails;
  mask_data?: WireBytes;
  stats?: Record<string, WireBytes>;
  /** Streamed kinds: each head's label from Python, [layer][head] ("" for none). */
  head_types?: string[][];
  /** Statistics users registered in Python (tx_magic.register_statistic): float32 (layer, head) per name. */
  user_stats?: Record<string, WireBytes>;
}

export interface WireImage {
  png: WireBytes;
  width: number;
  height: number;
  rows: number;
  cols: number;
  /** Name of the sequence whose tokens are the patches. */
  sequence: string;
  /** Index of the first patch token (the tokens before it are [CLS] and the like). */
  first: number;
}

export interface WireMeta {
  version: number;
  model: string;
  warnings: string[];
  sequences: Record<string, WireTokenSequence>;
  kinds: WireKind[];
  image?: WireImage;
  /** What was done to the run shown (heads ablated, weights edited). */
  intervention?: WireInterventionInfo;
  /** Per kind, what the kernel computes on request (ANALYSIS_* of wire-analyses.ts). */
  analyses?: Record<string, string[]>;
}

/** A value block without its bytes (a reply's content; the bytes are the message's buffers). */
export interface WireBlockHeader {
  kind: string;
  layer: number;
  dtype: typeof DTYPE | typeof DTYPE_UINT8;
  shape: number[];
  pool: number;
  q0: number;
  k0: number;
  /** LAYOUT_DENSE (absent: the same), or LAYOUT_LOWER: a square block's row r holds its first r + 1 values. */
  layout?: typeof LAYOUT_DENSE | typeof LAYOUT_LOWER;
}

export interface WireValueBlock extends WireBlockHeader {
  data: WireBytes;
  scale?: WireBytes;
}

export interface WireTopKHeader {
  kind: string;
  layer: number;
  dtype: typeof DTYPE_TOPK;
  shape: number[];
}

export interface WireTopKBlock extends WireTopKHeader {
  index: WireBytes;
  data: WireBytes;
}

export interface WireHidden {
  layers: number;
  tokens: number;
  norms: WireBytes;
  cosines: WireBytes;
  last_normed: boolean;
}

export interface WireLensInfo {
  layers: number;
  tokens: number;
  k: number;
}

export interface WireLogitsHeader {
  position: number;
}

export interface WireLogits extends WireLogitsHeader {
  data: WireBytes;
}

export interface WireGeneration {
  prompt: number;
  steps: number;
  sample: boolean;
}

export interface WireInternals {
  hidden?: WireHidden;
  lens?: WireLensInfo;
  logits?: WireLogits;
  vocab?: string[];
  generation?: WireGeneration;
}

// -- interventions and patching (interventions.ts, views/effects.ts) ----------------------------

export type Ablation = (typeof ABLATIONS)[number];

/** One head of one attention kind. */
export interface WireHeadRef {
  kind: string;
  layer: number;
  head: number;
}

/** Weight (query, key) of a head set to `weight`, the rest of its row rescaled to sum to 1. */
export interface WireWeightEdit extends WireHeadRef {
  query: number;
  key: number;
  weight: number;
}

/** `_meta.intervention`: what was done to the run shown (the banner). */
export interface WireInterventionInfo {
  label: string;
  ablate: WireHeadRef[];
  ablation: string;
  edit: WireWeightEdit[];
}

/** The unintervened run's logits after `position`: float32 (V,). */
export interface WireBaseline {
  position: number;
  data: WireBytes;
}

/** The `_reruns` trait ({} when the kernel cannot rerun): the ablation mode, and the unintervened run's
 * last logits while an intervention is shown. */
export interface WireReruns {
  ablation: string;
  baseline?: WireBaseline;
}

export interface WirePatchingResult {
  method: string;
  /** float32 (rows, cols) row-major. */
  effects: WireBytes;
  raw: WireBytes;
  seconds: number;
}

/** The `_patching` trait ({} when none): effects per layer (rows) and head, position or block (cols). */
export interface WirePatchingInfo {
  by: string;
  kind: string;
  metric: string;
  metric_clean: number;
  metric_corrupt: number;
  rows: number;
  cols: number;
  columns: string[];
  corrupted: string[];
  results: WirePatchingResult[];
  correlation?: number;
}

// -- requests and replies (rpc.ts) ---------------------------------------------------------------

export interface WireLayerRequest {
  kind: string;
  layer: number;
  dtype?: typeof DTYPE | typeof DTYPE_UINT8;
  pool?: number;
}

export interface WireBlockRequest {
  kind: string;
  layer: number;
  q0: number;
  q1: number;
  k0: number;
  k1: number;
}

export interface WireTopKRequest {
  kind: string;
  layer: number;
}

export interface WireLogitsRequest {
  position: number;
}

export interface WireLensRequest {
  positions: number[];
}

export interface WireLensReply {
  positions: number[];
  k: number;
}

export interface WireExportRequest {
  format: ExportFormat;
  scale?: number;
}

export interface WireExportReply {
  format: ExportFormat;
}

/** Rerun with exactly these heads ablated (edits kept). */
export interface WireAblateRequest {
  heads: WireHeadRef[];
  ablation: Ablation;
}

/** Rerun with exactly these weight edits (ablations kept). */
export interface WireEditRequest {
  edits: WireWeightEdit[];
}

/** Back to the model's own run. */
export type WireRestoreRequest = Record<string, never>;

export interface WireRerunReply {
  label: string;
}

/** A request, either way; `payload` is the request type's object. */
export interface WireRequest {
  type: string;
  id: string;
  payload: unknown;
}

/** The answer to request `id`; its bytes are the message's buffers. */
export interface WireReply {
  type: typeof REPLY;
  id: string;
  content: unknown;
  /** Milliseconds the kernel spent computing the reply (a widget's replies): the link meter takes it off. */
  kernel_ms?: number;
}

export interface WireErrorReply {
  type: typeof REPLY_ERROR;
  id: string;
  message: string;
}

// -- panels of the pattern library and user views (optional traits; parts of reports) -------------

/** A view registered with tx_magic.register_view: an ES module's source, drawn in its own tab. */
export interface WireUserView {
  name: string;
  source: string;
}

/** A census: P patterns over L layers x H heads, N inputs (shapes as in tx_magic/wire/schema.py). */
export interface WireCensusPanel {
  kind: string;
  layers: number;
  heads: number;
  patterns: string[];
  thresholds: number[];
  means: WireBytes;
  low: WireBytes;
  high: WireBytes;
  scored: WireBytes;
  shown: WireBytes;
  labels: string[][];
  evidence: string[][];
  inputs: string[];
  probes: string[];
  best: WireBytes;
  best_scores: WireBytes;
  current: number;
  texts?: number[];
}

/** Two traces compared: the widget's trace is A; B's metadata and layers travel here. */
export interface WireComparisonPanel {
  labels: string[];
  cells: boolean;
  note: string;
  meta: WireMeta;
  layers: Record<string, unknown>[];
  deltas: Record<string, Record<string, WireBytes>>;
}

export interface WireTrainingKind {
  name: string;
  layers: number;
  heads: number;
  size: number;
  thumbnails: WireBytes;
  fluctuation: WireBytes;
}

/** Snapshots through training (tx_magic.Recorder). */
export interface WireTrainingPanel {
  steps: number[];
  kinds: WireTrainingKind[];
}

// -- parity ---------------------------------------------------------------------------------------

/** A record of `T`'s keys, each marked as Python's TypedDict marks it (NotRequired = "optional"). */
export type Fields<T> = { [K in keyof T]-?: Partial<Pick<T, K>> extends Pick<T, K> ? "optional" : "required" };

/** A raw wire object before it is checked: only the keys its interface declares can be read. */
export type Unchecked<T> = { [K in keyof T]?: unknown };

const R = "required", O = "optional";

export const SEQUENCE_FIELDS = { text: R, special: R, segment: R, ids: R } satisfies Fields<WireTokenSequence>;
export const THUMBNAIL_FIELDS = { size: R, data: R } satisfies Fields<WireThumbnails>;
export const KIND_FIELDS = {
  name: R, layers: R, heads: R, queries: R, keys: R, mask: R, streamed: R, pool: R, thumbnails: R,
  mask_data: O, stats: O, head_types: O, user_stats: O,
} satisfies Fields<WireKind>;
export const IMAGE_FIELDS = {
  png: R, width: R, height: R, rows: R, cols: R, sequence: R, first: R,
} satisfies Fields<WireImage>;
export const META_FIELDS = {
  version: R, model: R, warnings: R, sequences: R, kinds: R, image: O, intervention: O, analyses: O,
} satisfies Fields<WireMeta>;
// Written out, not spread: tsc checks excess keys of the keys written in the literal only.
export const BLOCK_HEADER_FIELDS = {
  kind: R, layer: R, dtype: R, shape: R, pool: R, q0: R, k0: R, layout: O,
} satisfies Fields<WireBlockHeader>;
export const VALUE_BLOCK_FIELDS = {
  kind: R, layer: R, dtype: R, shape: R, pool: R, q0: R, k0: R, layout: O, data: R, scale: O,
} satisfies Fields<WireValueBlock>;
export const TOPK_HEADER_FIELDS = { kind: R, layer: R, dtype: R, shape: R } satisfies Fields<WireTopKHeader>;
export const TOPK_BLOCK_FIELDS = {
  kind: R, layer: R, dtype: R, shape: R, index: R, data: R,
} satisfies Fields<WireTopKBlock>;
export const HIDDEN_FIELDS = {
  layers: R, tokens: R, norms: R, cosines: R, last_normed: R,
} satisfies Fields<WireHidden>;
export const LENS_INFO_FIELDS = { layers: R, tokens: R, k: R } satisfies Fields<WireLensInfo>;
export const LOGITS_HEADER_FIELDS = { position: R } satisfies Fields<WireLogitsHeader>;
export const LOGITS_FIELDS = { position: R, data: R } satisfies Fields<WireLogits>;
export const GENERATION_FIELDS = { prompt: R, steps: R, sample: R } satisfies Fields<WireGeneration>;
export const INTERNALS_FIELDS = {
  hidden: O, lens: O, logits: O, vocab: O, generation: O,
} satisfies Fields<WireInternals>;
export const LAYER_REQUEST_FIELDS = { kind: R, layer: R, dtype: O, pool: O } satisfies Fields<WireLayerRequest>;
export const BLOCK_REQUEST_FIELDS = {
  kind: R, layer: R, q0: R, q1: R, k0: R, k1: R,
} satisfies Fields<WireBlockRequest>;
export const TOPK_REQUEST_FIELDS = { kind: R, layer: R } satisfies Fields<WireTopKRequest>;
export const LOGITS_REQUEST_FIELDS = { position: R } satisfies Fields<WireLogitsRequest>;
export const LENS_REQUEST_FIELDS = { positions: R } satisfies Fields<WireLensRequest>;
export const LENS_REPLY_FIELDS = { positions: R, k: R } satisfies Fields<WireLensReply>;
export const EXPORT_REQUEST_FIELDS = { format: R, scale: O } satisfies Fields<WireExportRequest>;
export const EXPORT_REPLY_FIELDS = { format: R } satisfies Fields<WireExportReply>;
export const REQUEST_FIELDS = { type: R, id: R, payload: R } satisfies Fields<WireRequest>;
export const REPLY_FIELDS = { type: R, id: R, content: R, kernel_ms: O } satisfies Fields<WireReply>;
export const ERROR_REPLY_FIELDS = { type: R, id: R, message: R } satisfies Fields<WireErrorReply>;
export const HEAD_REF_FIELDS = { kind: R, layer: R, head: R } satisfies Fields<WireHeadRef>;
export const WEIGHT_EDIT_FIELDS = {
  kind: R, layer: R, head: R, query: R, key: R, weight: R,
} satisfies Fields<WireWeightEdit>;
export const INTERVENTION_FIELDS = { label: R, ablate: R, ablation: R, edit: R } satisfies Fields<WireInterventionInfo>;
export const BASELINE_FIELDS = { position: R, data: R } satisfies Fields<WireBaseline>;
export const RERUNS_FIELDS = { ablation: R, baseline: O } satisfies Fields<WireReruns>;
export const PATCHING_RESULT_FIELDS = { method: R, effects: R, raw: R, seconds: R } satisfies Fields<WirePatchingResult>;
export const PATCHING_FIELDS = {
  by: R, kind: R, metric: R, metric_clean: R, metric_corrupt: R, rows: R, cols: R, columns: R, corrupted: R,
  results: R, correlation: O,
} satisfies Fields<WirePatchingInfo>;
export const ABLATE_REQUEST_FIELDS = { heads: R, ablation: R } satisfies Fields<WireAblateRequest>;
export const EDIT_REQUEST_FIELDS = { edits: R } satisfies Fields<WireEditRequest>;
export const RESTORE_REQUEST_FIELDS = {} satisfies Fields<WireRestoreRequest>;
export const RERUN_REPLY_FIELDS = { label: R } satisfies Fields<WireRerunReply>;
export const USER_VIEW_FIELDS = { name: R, source: R } satisfies Fields<WireUserView>;
export const CENSUS_PANEL_FIELDS = {
  kind: R, layers: R, heads: R, patterns: R, thresholds: R, means: R, low: R, high: R, scored: R, shown: R, labels: R,
  evidence: R, inputs: R, probes: R, best: R, best_scores: R, current: R, texts: O,
} satisfies Fields<WireCensusPanel>;
export const COMPARISON_PANEL_FIELDS = {
  labels: R, cells: R, note: R, meta: R, layers: R, deltas: R,
} satisfies Fields<WireComparisonPanel>;
export const TRAINING_KIND_FIELDS = {
  name: R, layers: R, heads: R, size: R, thumbnails: R, fluctuation: R,
} satisfies Fields<WireTrainingKind>;
export const TRAINING_PANEL_FIELDS = { steps: R, kinds: R } satisfies Fields<WireTrainingPanel>;

/** Every wire object's fields, under the name of its TypedDict in tx_magic/wire/schema.py. */
export const SCHEMA: Record<string, Record<string, "required" | "optional">> = {
  Meta: META_FIELDS, TokenSequence: SEQUENCE_FIELDS, Kind: KIND_FIELDS, Thumbnails: THUMBNAIL_FIELDS,
  Image: IMAGE_FIELDS, BlockHeader: BLOCK_HEADER_FIELDS, ValueBlock: VALUE_BLOCK_FIELDS, TopKHeader: TOPK_HEADER_FIELDS,
  TopKBlock: TOPK_BLOCK_FIELDS, Internals: INTERNALS_FIELDS, Hidden: HIDDEN_FIELDS, LensInfo: LENS_INFO_FIELDS,
  LogitsHeader: LOGITS_HEADER_FIELDS, Logits: LOGITS_FIELDS, Generation: GENERATION_FIELDS,
  LayerRequest: LAYER_REQUEST_FIELDS, BlockRequest: BLOCK_REQUEST_FIELDS, TopKRequest: TOPK_REQUEST_FIELDS,
  LogitsRequest: LOGITS_REQUEST_FIELDS, LensRequest: LENS_REQUEST_FIELDS, LensReply: LENS_REPLY_FIELDS,
  ExportRequest: EXPORT_REQUEST_FIELDS, ExportReply: EXPORT_REPLY_FIELDS, Request: REQUEST_FIELDS,
  Reply: REPLY_FIELDS, ErrorReply: ERROR_REPLY_FIELDS,
  HeadRef: HEAD_REF_FIELDS, WeightEdit: WEIGHT_EDIT_FIELDS, InterventionInfo: INTERVENTION_FIELDS, Reruns: RERUNS_FIELDS,
  PatchingResult: PATCHING_RESULT_FIELDS, PatchingInfo: PATCHING_FIELDS, AblateRequest: ABLATE_REQUEST_FIELDS,
  EditRequest: EDIT_REQUEST_FIELDS, RestoreRequest: RESTORE_REQUEST_FIELDS, RerunReply: RERUN_REPLY_FIELDS,
  Baseline: BASELINE_FIELDS, UserView: USER_VIEW_FIELDS, CensusPanel: CENSUS_PANEL_FIELDS,
  ComparisonPanel: COMPARISON_PANEL_FIELDS, TrainingKind: TRAINING_KIND_FIELDS, TrainingPanel: TRAINING_PANEL_FIELDS,
  ...ANALYSES_SCHEMA,
};

/** The keys of `_meta.image`, in order (derived from IMAGE_FIELDS). */
export const IMAGE_KEYS = Object.keys(IMAGE_FIELDS) as (keyof WireImage)[];
