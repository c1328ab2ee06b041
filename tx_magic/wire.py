"""The wire format between Python and the renderer, declared once (mirrored in js/src/wire.ts).

Version 2 (long inputs, issue #4). A trace crosses as two synced traits plus on-demand messages.

``_meta`` (JSON)::

    {"version": WIRE_VERSION, "model": str, "warnings": [str],
     "sequences": {name: {"text": [str], "special": [bool], "segment": [int], "ids": [int]}},
     "kinds": [{"name": kind, "layers": L, "heads": H, "queries": seq name, "keys": seq name,
                "mask": MASK_*, "streamed": bool, "pool": p, "thumbnails": {"size": T, "data": bytes},
                ["mask_data": bytes], ["stats": {name: bytes}, "head_types": [[str]]]}]}

- ``streamed``: the kind was captured reduced (`tx_magic.streamed`): whole layers exist only
  max-pooled over tiles of at least ``pool`` x ``pool`` tokens; exact cells come from REQUEST_BLOCK.
- ``thumbnails``: uint8 (layer, head, T, T), round(255 * max over each tile), T = min(THUMBNAIL_SIZE, Q, K);
  the tiles split queries and keys as evenly as ``numpy.array_split`` does.
- ``mask_data`` (explicit masks only): Q*K uint8, 1 = allowed.
- ``stats`` and ``head_types`` (streamed kinds only: the renderer cannot compute them without the
  weights): float32 (layer, head) per name of `tx_magic.analysis.STAT_NAMES`, and each head's label
  ("" for none).

``_layers``: the blocks sent eagerly (see `eager_layers`), value blocks and top-k blocks::

    {"kind", "layer", "dtype": "float32" | "uint8", "shape": [H, R, C], "pool": p, "q0", "k0",
     "data": bytes, ["scale": bytes]}
    {"kind", "layer", "dtype": "topk", "shape": [H, Q, k], "index": bytes, "data": bytes}

A value block covers queries q0 .. min(Q, q0 + R*p) and keys k0 .. min(K, k0 + C*p), row-major
(head, row, column); with p > 1 each value is the max over a p x p tile (the last may be partial).
float32 data is little-endian. uint8: value = byte / 255 * scale[head, row], with ``scale`` float32
(H, R), the row's max: the absolute error is at most scale / 510, i.e. <= 0.2 % of the row's largest
weight (and <= 1/510 ~ 0.002). A top-k block holds each query row's k largest weights (float32) and
their key indices (int32), largest first; rows with fewer than k allowed keys are padded with weight 0.

Requests from the renderer (custom messages; each may carry ``"id"``, echoed in the reply):

- ``{"type": REQUEST_LAYER, "kind", "layer", "dtype", "pool"}`` -> ``{"type": REPLY_LAYER, <block
  without data/scale>}`` with buffers [data] or [data, scale]; the reply's pool is what was given
  (a streamed kind's pool is raised to a multiple of its ``pool``);
- ``{"type": REQUEST_BLOCK, "kind", "layer", "q0", "q1", "k0", "k1"}`` -> ``{"type": REPLY_BLOCK, ...}``,
  exact float32 at pool 1, buffers [data]; at most MAX_BLOCK_CELLS cells per head;
- ``{"type": REQUEST_TOPK, "kind", "layer"}`` -> ``{"type": REPLY_TOPK, ...}``, buffers [index, data];
- anything wrong -> ``{"type": REPLY_ERROR, "id", "kind", "layer", "message"}``.

Python asks the renderer for a picture of the current view with
``{"type": REQUEST_EXPORT, "id": str, "format": "png" | "svg"}``; a view answers
``{"type": REPLY_EXPORT, "id", "format"}`` with the file's bytes as the message's one buffer
(at most EXPORT_MAX_BYTES: browser -> kernel messages are capped at 10 MiB), or
``{"type": REPLY_EXPORT_ERROR, "id", "message"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .trace import KIND_SEQUENCES, Trace

WIRE_VERSION = 2
#: Bytes of binary data (values, scales, top-k, thumbnails, statistics, masks) sent with the widget.
EAGER_BUDGET = 8 * 1024 * 1024
#: Largest whole-layer reply (Python only): beyond it a coarser pool must be asked for.
MAX_LAYER_BYTES = 256 * 1024 * 1024
#: Largest exact block (cells per head) one REQUEST_BLOCK gets.
MAX_BLOCK_CELLS = 1024 * 1024
#: Tiles a side of each head's thumbnail (fewer when the kind has fewer tokens).
THUMBNAIL_SIZE = 32
#: Keys per query row in a top-k block computed from full weights.
TOP_K = 8

DTYPE = "float32"
DTYPE_UINT8 = "uint8"
DTYPE_TOPK = "topk"

MASK_NONE = "none"
MASK_CAUSAL = "causal"
MASK_EXPLICIT = "explicit"

REQUEST_LAYER = "get_layer"
REPLY_LAYER = "layer"
REQUEST_BLOCK = "get_block"
REPLY_BLOCK = "block"
REQUEST_TOPK = "get_topk"
REPLY_TOPK = "topk"
REPLY_ERROR = "error"

REQUEST_EXPORT = "export"
REPLY_EXPORT = "exported"
REPLY_EXPORT_ERROR = "export_error"
EXPORT_FORMATS = ("png", "svg")
#: Largest export a view sends to the kernel (the server drops browser messages over 10 MiB).
EXPORT_MAX_BYTES = 9 * 1024 * 1024

#: Keys of each JSON object on the wire; tests check js/src/wire.ts declares the same.
META_KEYS = ("version", "model", "warnings", "sequences", "kinds")
SEQUENCE_KEYS = ("text", "special", "segment", "ids")
KIND_KEYS = ("name", "layers", "heads", "queries", "keys", "mask", "streamed", "pool", "thumbnails")
BLOCK_KEYS = ("kind", "layer", "dtype", "shape", "pool", "q0", "k0", "data")
TOPK_KEYS = ("kind", "layer", "dtype", "shape", "index", "data")
THUMBNAIL_KEYS = ("size", "data")


class RequestError(ValueError):
    """A request the kernel cannot answer; the message says why and what to ask instead."""


# -- meta ------------------------------------------------------------------------------------------

def mask_type(trace: Trace, kind: str) -> tuple[str, np.ndarray | None]:
    """Classify the kind's mask as none, causal (lower triangle) or explicit."""
    if kind not in trace.masks:
        return MASK_NONE, None
    mask = trace.masks[kind]
    if mask.all():
        return MASK_NONE, None
    q, k = mask.shape
    if q == k and _lower_triangle(mask):
        return MASK_CAUSAL, None
    return MASK_EXPLICIT, mask


def _lower_triangle(mask: np.ndarray) -> bool:
    """Whether row i allows exactly keys 0..i: i + 1 allowed, the first refused one at i + 1
    (no n x n temporary: masks of long inputs are 64 MB)."""
    n = mask.shape[0]
    counts = np.count_nonzero(mask, axis=1)
    if not np.array_equal(counts, np.arange(1, n + 1)):
        return False
    return bool(np.array_equal(np.argmin(mask[:-1], axis=1), np.arange(1, n)))


def kind_pool(trace: Trace, kind: str) -> int:
    """The finest pool a whole layer of `kind` comes at: 1, or a streamed kind's overview tile."""
    att = trace.attentions[kind]
    return 1 if isinstance(att, np.ndarray) else int(att.tile)


def encode_meta(trace: Trace) -> dict[str, Any]:
    """The ``_meta`` trait: everything but the attention values (thumbnails and, streamed, statistics)."""
    kinds = []
    for kind in trace.kinds:
        layers, heads, _, _ = trace.shape(kind)
        queries, keys = KIND_SEQUENCES[kind]
        mtype, mask = mask_type(trace, kind)
        thumbs = thumbnails(trace, kind)
        entry: dict[str, Any] = {
            "name": kind, "layers": layers, "heads": heads,
            "queries": queries, "keys": keys, "mask": mtype,
            "streamed": trace.is_streamed(kind), "pool": kind_pool(trace, kind),
            "thumbnails": {"size": int(thumbs.shape[-1]), "data": _to_uint8(thumbs).tobytes()},
        }
        if mask is not None:
            entry["mask_data"] = np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
        if trace.is_streamed(kind):
            from .analysis import STAT_NAMES, streamed_stats

            stats, labels = streamed_stats(trace.attentions[kind])
            entry["stats"] = {name: np.ascontiguousarray(stats[name], dtype="<f4").tobytes() for name in STAT_NAMES}
            entry["head_types"] = [[str(label) for label in row] for row in labels]
        kinds.append(entry)
    used = {s for kind in trace.kinds for s in KIND_SEQUENCES[kind]}
    return {
        "version": WIRE_VERSION,
        "model": trace.model_name,
        "warnings": list(trace.warnings),
        "sequences": {
            name: {"text": list(seq.text), "special": list(seq.special), "segment": list(seq.segment),
                   "ids": list(seq.ids)}
            for name, seq in trace.sequences.items() if name in used
        },
        "kinds": kinds,
        **encode_image(trace),
    }


def tile_starts(n: int, tiles: int) -> np.ndarray:
    """First index of each of `tiles` parts of range(n), split as ``numpy.array_split`` does."""
    size, extra = divmod(n, tiles)
    i = np.arange(tiles)
    return i * size + np.minimum(i, extra)


def thumbnails(trace: Trace, kind: str) -> np.ndarray:
    """Each head's matrix max-pooled to T x T tiles (T = min(THUMBNAIL_SIZE, Q, K)): float32 (L, H, T, T)."""
    layers, heads, q, k = trace.shape(kind)
    size = max(1, min(THUMBNAIL_SIZE, q, k))
    att = trace.attentions[kind]
    if not isinstance(att, np.ndarray):
        kept = getattr(att, "thumbnails", None)
        if kept is not None and kept.shape[-1] == size:
            return kept
        return _thumbnails_from_tiles(att, size)
    out = np.empty((layers, heads, size, size), dtype=np.float32)
    for layer in range(layers):
        out[layer] = _split_max(_split_max(att[layer], size, 1), size, 2)  # rows first: then it is small
    return out


def _runs_max(x: np.ndarray, axis: int, start: int, count: int, size: int) -> np.ndarray:
    """Max over `count` consecutive runs of `size` along `axis` from `start` (NaN ignored).

    Along the last axis by strided passes, else by reshaping and reducing a middle axis: both keep
    numpy's inner loop on contiguous memory (reducing a short innermost axis is ~10x slower).
    """
    index: list[Any] = [slice(None)] * x.ndim
    if axis == x.ndim - 1:
        index[axis] = slice(start, start + count * size, size)
        out = x[tuple(index)].copy()
        for i in range(1, size):
            index[axis] = slice(start + i, start + count * size, size)
            np.fmax(out, x[tuple(index)], out=out)
        return out
    index[axis] = slice(start, start + count * size)
    part = x[tuple(index)]
    return np.fmax.reduce(part.reshape(part.shape[:axis] + (count, size) + part.shape[axis + 1:]), axis=axis + 1)


def _split_max(x: np.ndarray, parts: int, axis: int) -> np.ndarray:
    """Max over `parts` pieces of `axis` split as numpy.array_split does."""
    size, extra = divmod(x.shape[axis], parts)
    pieces = [_runs_max(x, axis, 0, extra, size + 1)] if extra else []
    if parts > extra:
        pieces.append(_runs_max(x, axis, extra * (size + 1), parts - extra, size))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis)


def _pool_max(x: np.ndarray, pool: int, axis: int) -> np.ndarray:
    """Max over consecutive runs of `pool` along `axis`, the last run partial."""
    n = x.shape[axis]
    full = n // pool
    pieces = [_runs_max(x, axis, 0, full, pool)] if full else []
    if full * pool < n:
        pieces.append(_runs_max(x, axis, full * pool, 1, n - full * pool))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis)


def _thumbnails_from_tiles(att: Any, size: int) -> np.ndarray:
    """A streamed capture without thumbnails: the max of the overview tiles each thumbnail tile overlaps."""
    _, _, q, k = att.shape
    t = att.tile

    def spans(n: int) -> list[tuple[int, int]]:
        starts = list(tile_starts(n, size)) + [n]
        return [(a // t, -(-b // t)) for a, b in zip(starts[:-1], starts[1:])]

    rows = np.stack([att.tiles[:, :, a:b].max(2) for a, b in spans(q)], axis=2)
    return np.stack([rows[..., a:b].max(-1) for a, b in spans(k)], axis=-1).astype(np.float32)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as round(255 * p)."""
    v = np.clip(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.rint(v * 255.0).astype(np.uint8)


# -- value blocks ----------------------------------------------------------------------------------

def quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 values, float32 scale per row): byte = round(p / scale * 255), scale = the row's max.

    Decoded as byte / 255 * scale, each value is within scale / 510 of `p`. NaN counts as 0; a row of
    zeros has scale 0.
    """
    v = np.asarray(values, dtype=np.float32)
    if not v.shape[-1]:
        return np.zeros(v.shape, np.uint8), np.zeros(v.shape[:-1], np.float32)
    scale = v.max(-1)
    if np.isnan(scale).any():  # rare: a NaN weight must not hide its row
        scale = np.fmax.reduce(v, axis=-1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.float32(0)).astype(np.float32)
    inverse = np.zeros_like(scale)
    np.divide(np.float32(255.0), scale, out=inverse, where=scale > 0)
    q = v * inverse[..., None]          # <= 255 (+ rounding) as no weight exceeds its row's max
    q += np.float32(0.5)                # then truncation rounds to the nearest
    np.fmax(q, np.float32(0.0), out=q)  # NaN and negatives -> 0
    return q.astype(np.uint8), scale


def make_block(kind: str, layer: int, values: np.ndarray, dtype: str = DTYPE, pool: int = 1,
               q0: int = 0, k0: int = 0) -> dict[str, Any]:
    """A value block of (heads, rows, columns) `values` as float32 or uint8 (with its row scales)."""
    block: dict[str, Any] = {"kind": kind, "layer": int(layer), "dtype": dtype, "shape": [int(s) for s in values.shape],
                             "pool": int(pool), "q0": int(q0), "k0": int(k0)}
    if dtype == DTYPE:
        block["data"] = np.ascontiguousarray(values, dtype="<f4").tobytes()
    elif dtype == DTYPE_UINT8:
        data, scale = quantize(values)
        block["data"], block["scale"] = data.tobytes(), scale.astype("<f4").tobytes()
    else:
        raise RequestError(f"dtype must be {DTYPE!r} or {DTYPE_UINT8!r}, not {dtype!r}")
    return block


def block_nbytes(heads: int, rows: int, cols: int, dtype: str) -> int:
    """Bytes of a value block's data (and scale)."""
    return heads * rows * cols * 4 if dtype == DTYPE else heads * rows * cols + heads * rows * 4


def layer_nbytes(trace: Trace, kind: str, dtype: str = DTYPE, pool: int = 1) -> int:
    """Bytes of one whole layer of `kind` at `pool`, as `dtype`."""
    _, heads, q, k = trace.shape(kind)
    return block_nbytes(heads, -(-q // pool), -(-k // pool), dtype)


def layer_pool(trace: Trace, kind: str, pool: int | None) -> int:
    """The pool a whole-layer request gets: at least the kind's, a multiple of it."""
    base = kind_pool(trace, kind)
    if pool is None:
        return base
    pool = _count(pool, "pool")
    if pool < 1:
        raise RequestError(f"pool must be at least 1, got {pool}")
    return max(base, -(-pool // base) * base)


def pooled_layer(trace: Trace, kind: str, layer: int, pool: int) -> np.ndarray:
    """One layer max-pooled over `pool` x `pool` tiles, (heads, ceil(Q/pool), ceil(K/pool)) float32.

    `pool` must be a multiple of `kind_pool` (see `layer_pool`).
    """
    att = trace.attentions[kind]
    _, _, q, k = trace.shape(kind)
    if isinstance(att, np.ndarray):
        values, step, (n_rows, n_cols) = att[layer], pool, (q, k)
    else:
        values, step = att.tiles[layer], pool // att.tile
        n_rows, n_cols = values.shape[1:]
    if step == 1:
        return np.asarray(values, dtype=np.float32)
    return _pool_max(_pool_max(values, step, 1), step, 2)


def encode_layer(trace: Trace, kind: str, layer: int, dtype: str = DTYPE, pool: int | None = None) -> dict[str, Any]:
    """One whole layer: float32 or uint8, at `pool` (default: the finest the kind has)."""
    layer = _layer_index(trace, kind, layer)
    if dtype not in (DTYPE, DTYPE_UINT8):
        raise RequestError(f"dtype must be {DTYPE!r} or {DTYPE_UINT8!r}, not {dtype!r}")
    pool = layer_pool(trace, kind, pool)
    size = layer_nbytes(trace, kind, dtype, pool)
    if size > MAX_LAYER_BYTES:
        coarser = pool
        while layer_nbytes(trace, kind, dtype, coarser) > MAX_LAYER_BYTES:
            coarser *= 2
        raise RequestError(
            f"one {kind} layer at pool {pool} as {dtype} is {size / 1024 ** 2:.0f} MB, more than a reply may "
            f"carry ({MAX_LAYER_BYTES / 1024 ** 2:.0f} MB): ask for pool {coarser} (or uint8), or exact blocks"
        )
    return make_block(kind, layer, pooled_layer(trace, kind, layer, pool), dtype, pool)


def encode_block(trace: Trace, kind: str, layer: int, q0: int, q1: int, k0: int, k1: int) -> dict[str, Any]:
    """Exact float32 weights of queries q0:q1 and keys k0:k1 (ends clamped to the matrix)."""
    layer = _layer_index(trace, kind, layer)
    _, _, nq, nk = trace.shape(kind)
    q0, q1, k0, k1 = (_count(v, name) for v, name in ((q0, "q0"), (q1, "q1"), (k0, "k0"), (k1, "k1")))
    q1, k1 = min(q1, nq), min(k1, nk)
    if not (0 <= q0 < q1 and 0 <= k0 < k1):
        raise RequestError(f"empty or negative block: queries {q0}:{q1} of {nq}, keys {k0}:{k1} of {nk}")
    cells = (q1 - q0) * (k1 - k0)
    if cells > MAX_BLOCK_CELLS:
        raise RequestError(f"a block of {q1 - q0} x {k1 - k0} cells is more than one request gets "
                           f"({MAX_BLOCK_CELLS} per head): ask for a smaller window")
    values = trace.block(kind, layer, q0, q1, k0, k1)
    return make_block(kind, layer, values, DTYPE, 1, q0, k0)


def encode_topk(trace: Trace, kind: str, layer: int, k: int | None = None) -> dict[str, Any]:
    """Each query row's `k` (default all kept, else TOP_K) largest weights and their keys."""
    layer = _layer_index(trace, kind, layer)
    att = trace.attentions[kind]
    if isinstance(att, np.ndarray):
        x = np.nan_to_num(att[layer], nan=0.0, posinf=0.0, neginf=0.0)
        kept = min(TOP_K if k is None else k, x.shape[-1])
        index = np.argpartition(-x, kept - 1, axis=-1)[..., :kept]
        values = np.take_along_axis(x, index, -1)
        order = np.argsort(-values, axis=-1, kind="stable")
        index, values = np.take_along_axis(index, order, -1), np.take_along_axis(values, order, -1)
    else:
        kept = att.top_values.shape[-1] if k is None else min(k, att.top_values.shape[-1])
        index, values = att.top_index[layer, ..., :kept], att.top_values[layer, ..., :kept]
    return {"kind": kind, "layer": int(layer), "dtype": DTYPE_TOPK, "shape": [int(s) for s in values.shape],
            "index": np.ascontiguousarray(index, dtype="<i4").tobytes(),
            "data": np.ascontiguousarray(values, dtype="<f4").tobytes()}


def topk_width(trace: Trace, kind: str) -> int:
    """k of the kind's top-k blocks."""
    att = trace.attentions[kind]
    return min(TOP_K, trace.shape(kind)[3]) if isinstance(att, np.ndarray) else int(att.top_values.shape[-1])


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
            isinstance(value, float) and value.is_integer()):
        raise RequestError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _layer_index(trace: Trace, kind: str, layer: Any) -> int:
    if kind not in trace.attentions:
        raise RequestError(f"this trace has no {kind!r} attention; it has {list(trace.kinds)}")
    layer = _count(layer, "layer")
    layers = trace.shape(kind)[0]
    if not 0 <= layer < layers:
        raise RequestError(f"{kind} attention has layers 0..{layers - 1}, not {layer}")
    return layer


# -- what is sent with the widget ------------------------------------------------------------------

@dataclass(frozen=True)
class Eager:
    """One block of the eager payload: a whole layer (`dtype`, `pool`) or, dtype "topk", `k` top keys."""

    kind: str
    layer: int
    dtype: str
    pool: int = 1
    k: int = 0


def meta_nbytes(trace: Trace) -> int:
    """Binary bytes `encode_meta` adds: thumbnails, explicit masks, streamed kinds' statistics."""
    from .analysis import STAT_NAMES

    total = 0
    for kind in trace.kinds:
        layers, heads, q, k = trace.shape(kind)
        total += layers * heads * max(1, min(THUMBNAIL_SIZE, q, k)) ** 2
        if mask_type(trace, kind)[0] == MASK_EXPLICIT:
            total += q * k
        if trace.is_streamed(kind):
            total += len(STAT_NAMES) * layers * heads * 4
    if getattr(trace, "image", None) is not None:
        total += len(trace.image.png)
    return total


def eager_plan(trace: Trace, budget: int = EAGER_BUDGET, layer: int = 0) -> list[Eager]:
    """What the widget sends at once, within `budget` bytes together with the meta's binary parts:

    1. every layer as float32, if all fit; 2. else every layer as uint8, if all fit;
    3. else per kind the initial `layer` (clamped to the kind's), uint8, if it fits the kind's share;
    4. else that layer max-pooled at the smallest pool that fits, plus, streamed, its top-k block.
    """
    kinds = trace.kinds
    room = budget - meta_nbytes(trace)
    if all(kind_pool(trace, k) == 1 for k in kinds):
        for dtype in (DTYPE, DTYPE_UINT8):
            if sum(trace.shape(k)[0] * layer_nbytes(trace, k, dtype) for k in kinds) <= room:
                return [Eager(k, l, dtype) for k in kinds for l in range(trace.shape(k)[0])]
    share = room // len(kinds)
    plan = []
    for kind in kinds:
        layers, heads, q, n_keys = trace.shape(kind)
        at = min(max(layer, 0), layers - 1)
        base = kind_pool(trace, kind)
        if base == 1 and layer_nbytes(trace, kind, DTYPE_UINT8) <= share:
            plan.append(Eager(kind, at, DTYPE_UINT8))
            continue
        left = share
        if trace.is_streamed(kind):
            k = topk_width(trace, kind)
            while k > 0 and heads * q * k * 8 > 0.8 * share:
                k -= 1
            if k:
                plan.append(Eager(kind, at, DTYPE_TOPK, k=k))
                left -= heads * q * k * 8
        pool = base if base > 1 else 2
        while layer_nbytes(trace, kind, DTYPE_UINT8, pool) > left and pool < max(q, n_keys):
            pool *= 2
        plan.append(Eager(kind, at, DTYPE_UINT8, pool))
    return plan


def plan_nbytes(trace: Trace, plan: list[Eager]) -> int:
    """Binary bytes of the blocks in `plan`."""
    total = 0
    for item in plan:
        _, heads, q, _ = trace.shape(item.kind)
        total += heads * q * item.k * 8 if item.dtype == DTYPE_TOPK else layer_nbytes(trace, item.kind, item.dtype,
                                                                                        item.pool)
    return total


def encode_eager(trace: Trace, item: Eager) -> dict[str, Any]:
    """The block one `Eager` entry stands for."""
    if item.dtype == DTYPE_TOPK:
        return encode_topk(trace, item.kind, item.layer, item.k)
    return encode_layer(trace, item.kind, item.layer, item.dtype, item.pool)


def eager_layers(trace: Trace, budget: int = EAGER_BUDGET, layer: int = 0) -> list[dict[str, Any]]:
    """The ``_layers`` trait: the blocks of `eager_plan`, encoded."""
    return [encode_eager(trace, item) for item in eager_plan(trace, budget, layer)]


# -- requests from the renderer --------------------------------------------------------------------

def answer(trace: Trace, request: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]] | None:
    """The reply (content, buffers) to a renderer's request, an error reply, or None if not a request."""
    kind_of = request.get("type")
    if kind_of not in (REQUEST_LAYER, REQUEST_BLOCK, REQUEST_TOPK):
        return None
    echo = {"id": request["id"]} if "id" in request else {}
    kind, layer = request.get("kind"), request.get("layer")
    try:
        if not isinstance(kind, str):
            raise RequestError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
        if kind_of == REQUEST_LAYER:
            block = encode_layer(trace, kind, layer, request.get("dtype", DTYPE), request.get("pool"))
            reply_type, parts = REPLY_LAYER, ["data", "scale"]
        elif kind_of == REQUEST_BLOCK:
            block = encode_block(trace, kind, layer, *(request.get(n) for n in ("q0", "q1", "k0", "k1")))
            reply_type, parts = REPLY_BLOCK, ["data"]
        else:
            block = encode_topk(trace, kind, layer)
            reply_type, parts = REPLY_TOPK, ["index", "data"]
    except (RequestError, KeyError, IndexError, TypeError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return {"type": REPLY_ERROR, "id": request.get("id"), "kind": kind, "layer": layer,
                "message": str(message)}, []
    buffers = [block.pop(name) for name in parts if name in block]
    return {"type": reply_type, **block, **echo}, buffers


# -- decoding (tests, reports) ---------------------------------------------------------------------

def decode_block(block: dict[str, Any], buffers: list[Any] | None = None) -> np.ndarray:
    """A value block's values as float32 (heads, rows, columns); uint8 dequantized.

    `buffers`: a reply's buffers ([data] or [data, scale]) when the block came as a message.
    """
    if buffers:
        block = {**block, "data": buffers[0], **({"scale": buffers[1]} if len(buffers) > 1 else {})}
    shape = tuple(block["shape"])
    if block["dtype"] == DTYPE:
        return np.frombuffer(bytes(block["data"]), dtype="<f4").reshape(shape)
    if block["dtype"] == DTYPE_UINT8:
        data = np.frombuffer(bytes(block["data"]), dtype=np.uint8).reshape(shape).astype(np.float32)
        scale = np.frombuffer(bytes(block["scale"]), dtype="<f4").reshape(shape[:2])
        return data / np.float32(255.0) * scale[..., None]
    raise ValueError(f"unknown dtype {block['dtype']!r}")


decode_layer = decode_block


def decode_topk(block: dict[str, Any], buffers: list[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A top-k block's (key index int32, weight float32), each (heads, queries, k)."""
    if buffers:
        block = {**block, "index": buffers[0], "data": buffers[1]}
    shape = tuple(block["shape"])
    return (np.frombuffer(bytes(block["index"]), dtype="<i4").reshape(shape),
            np.frombuffer(bytes(block["data"]), dtype="<f4").reshape(shape))


def decode_thumbnails(kind: dict[str, Any]) -> np.ndarray:
    """A meta kind's thumbnails, uint8 (layer, head, T, T)."""
    size = kind["thumbnails"]["size"]
    return np.frombuffer(bytes(kind["thumbnails"]["data"]), dtype=np.uint8).reshape(kind["layers"], kind["heads"],
                                                                                   size, size)


def decode_stats(kind: dict[str, Any]) -> dict[str, np.ndarray]:
    """A streamed meta kind's statistics, float32 (layer, head) per name."""
    return {name: np.frombuffer(bytes(data), dtype="<f4").reshape(kind["layers"], kind["heads"])
            for name, data in kind.get("stats", {}).items()}


# ---------------------------------------------------------------------------------------------
# Model internals: hidden states, logit lens, next-token logits, generation (issue #6).
# Mirrored by the "model internals" section at the end of js/src/wire.ts.
#
# The widget's ``_internals`` trait (JSON, {} when the trace has none)::
#
#     {"hidden": {"layers": L, "tokens": n, "norms": bytes, "cosines": bytes,    # float32 (L+1, n)
#                 "last_normed": bool},            # the last row is after the final norm
#      "lens": {"layers": L, "tokens": n, "k": k},    # the lens exists; its cells come on request
#      "logits": {"position": n-1, "data": bytes},     # float32 (V,): exact logits after the last token
#      "vocab": [str],                                 # display string of each token id (V of them)
#      "generation": {"prompt": p, "steps": s, "sample": bool}}   # tokens p.. were generated
#
# Each part is present only when captured. Row 0 of hidden/lens is the embeddings, row l the
# output of layer l; cosines[0] is NaN. Other positions' logits come on request:
# ``{"type": REQUEST_LOGITS, "position": i}`` -> ``{"type": REPLY_LOGITS, "position": i}`` with
# the float32 (V,) logits as the one buffer, or ``{"type": REPLY_LOGITS_ERROR, "position", "message"}``.
# The lens is computed when the lens tab asks for the positions it shows (at most
# MAX_LENS_POSITIONS a request): ``{"type": REQUEST_LENS, "id": str, "positions": [int]}`` ->
# ``{"type": REPLY_LENS, "id", "positions", "k"}`` with two buffers, int32 ids and float32
# probabilities, each (L+1, len(positions), k) row-major; or ``{"type": REPLY_LENS_ERROR, "id", "message"}``.
# ---------------------------------------------------------------------------------------------

REQUEST_LOGITS = "get_logits"
REPLY_LOGITS = "logits"
REPLY_LOGITS_ERROR = "logits_error"
REQUEST_LENS = "get_lens"
REPLY_LENS = "lens"
REPLY_LENS_ERROR = "lens_error"
MAX_LENS_POSITIONS = 256
INTERNALS_KEYS = ("hidden", "lens", "logits", "vocab", "generation")
HIDDEN_KEYS = ("layers", "tokens", "norms", "cosines", "last_normed")
LENS_KEYS = ("layers", "tokens", "k")
LENS_REPLY_KEYS = ("type", "id", "positions", "k")
LOGITS_KEYS = ("position", "data")
GENERATION_KEYS = ("prompt", "steps", "sample")


def encode_internals(trace: Trace) -> dict[str, Any]:
    """The ``_internals`` trait: what the trace holds of hidden states, lens, logits, generation."""
    out: dict[str, Any] = {}
    if trace.hidden is not None:
        rows, n = trace.hidden.norms.shape
        out["hidden"] = {"layers": rows - 1, "tokens": n,
                         "norms": np.ascontiguousarray(trace.hidden.norms, dtype="<f4").tobytes(),
                         "cosines": np.ascontiguousarray(trace.hidden.cosines, dtype="<f4").tobytes(),
                         "last_normed": bool(trace.hidden.last_normed)}
    if trace.lens is not None:
        out["lens"] = {"layers": trace.lens.layers, "tokens": trace.lens.tokens, "k": trace.lens.k}
    if trace.logits is not None:
        out["logits"] = encode_logits(trace, trace.logits.tokens - 1)
    if trace.vocab is not None and ("lens" in out or "logits" in out):
        out["vocab"] = list(trace.vocab)
    if trace.generation is not None:
        out["generation"] = {"prompt": trace.generation.prompt_length, "steps": trace.generation.steps,
                             "sample": trace.generation.sample}
    return out


def encode_logits(trace: Trace, position: int) -> dict[str, Any]:
    """Next-token logits after token `position`: {"position", "data": float32 (V,) bytes}."""
    if trace.logits is None:
        raise ValueError("this trace has no next-token logits (only causal LMs have them)")
    values = np.ascontiguousarray(trace.logits.at(int(position)), dtype="<f4")
    return {"position": int(position), "data": values.tobytes()}


def answer_lens(trace: Trace, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Reply to a REQUEST_LENS message: the lens at the positions asked for, or REPLY_LENS_ERROR."""
    request_id = content.get("id")
    try:
        if trace.lens is None:
            raise ValueError("this trace has no logit lens (only causal LMs have one)")
        positions = content.get("positions")
        if not isinstance(positions, list) or not positions or len(positions) > MAX_LENS_POSITIONS:
            raise ValueError(f"positions must be a list of 1..{MAX_LENS_POSITIONS} token positions")
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
            raise TypeError("positions must be whole numbers")
        top = trace.lens.top(positions)
    except (IndexError, TypeError, ValueError) as exc:
        return {"type": REPLY_LENS_ERROR, "id": request_id, "message": str(exc)}, []
    reply = {"type": REPLY_LENS, "id": request_id, "positions": list(top.positions), "k": int(top.ids.shape[-1])}
    return reply, [np.ascontiguousarray(top.ids, dtype="<i4").tobytes(),
                   np.ascontiguousarray(top.probs, dtype="<f4").tobytes()]


# ---------------------------------------------------------------------------------------------
# Images (issue #6): the picture a ViT-style model saw, so the widget can draw attention over it.
# Mirrored by the "images" section at the end of js/src/wire.ts.
#
# ``_meta["image"]``, present only when the trace has an image (`tx_magic.images.PatchImage`)::
#
#     {"png": bytes, "width": W, "height": H, "rows": R, "cols": C, "sequence": "input", "first": f}
#
# ``png`` is the picture as resized for the model (W x H pixels); tokens ``first`` ..
# ``first + R*C - 1`` of ``sequence`` are its patches, row by row over an R x C grid.
# ---------------------------------------------------------------------------------------------

META_IMAGE = "image"
IMAGE_KEYS = ("png", "width", "height", "rows", "cols", "sequence", "first")


def encode_image(trace: Trace) -> dict[str, Any]:
    """``{"image": {...}}`` for a trace with an image, else {} (merged into ``_meta``)."""
    image = getattr(trace, "image", None)
    if image is None:
        return {}
    return {META_IMAGE: {"png": bytes(image.png), "width": int(image.width), "height": int(image.height),
                         "rows": int(image.rows), "cols": int(image.cols), "sequence": "input",
                         "first": int(image.first)}}
