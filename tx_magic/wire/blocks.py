"""Value blocks and top-k blocks: one layer (or a window of it) as float32, 8-bit or max-pooled bytes."""

from __future__ import annotations

import numpy as np

from ..core.trace import Trace
from .masks import mask_type
from .schema import (
    DTYPE,
    DTYPE_TOPK,
    DTYPE_UINT8,
    LAYOUT_DENSE,
    LAYOUT_LOWER,
    MASK_CAUSAL,
    MAX_BLOCK_CELLS,
    MAX_LAYER_BYTES,
    BlockHeader,
    RequestError,
    TopKBlock,
    TopKHeader,
    ValueBlock,
)


def quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 values, float32 scale per row): byte = round(p / scale * 255), scale = the row's max.

    Decoded as byte / 255 * scale, each value is within scale / 510 of `p` (and float32's rounding).
    NaN counts as 0; a row of zeros has scale 0; a row whose max is tiny (255 / max overflows float32,
    below ~7.5e-37) is divided rather than multiplied by its inverse, so it keeps its values too.
    """
    v = np.asarray(values, dtype=np.float32)
    codes, scale = np.empty(v.shape, np.uint8), np.empty(v.shape[:-1], np.float32)
    if v.shape[-1]:
        _quantize_into(v, codes, scale, np.empty(v.shape, np.float32))
    else:
        scale[...] = 0
    return codes, scale


def _quantize_into(v: np.ndarray, codes: np.ndarray, scale: np.ndarray, scratch: np.ndarray) -> None:
    """`quantize` of float32 `v` (..., C), C > 0, into `codes` and `scale`, using float32 `scratch` (v's shape)."""
    np.max(v, axis=-1, out=scale)
    if np.isnan(scale).any():  # rare: a NaN weight must not hide its row
        scale[...] = np.fmax.reduce(v, axis=-1)
    scale[~(np.isfinite(scale) & (scale > 0))] = 0
    inverse = np.zeros_like(scale)
    with np.errstate(over="ignore", invalid="ignore"):  # tiny rows: mended below
        np.divide(np.float32(255.0), scale, out=inverse, where=scale > 0)
        np.multiply(v, inverse[..., None], out=scratch)  # <= 255 (+ rounding): no weight exceeds its row's max
    tiny = np.isinf(inverse)
    if tiny.any():  # rare: dividing keeps such a row's ratios finite
        scratch[tiny] = v[tiny] / scale[tiny][:, None] * np.float32(255.0)
    scratch += np.float32(0.5)                    # then truncation rounds to the nearest
    np.fmax(scratch, np.float32(0.0), out=scratch)  # NaN and negatives -> 0
    np.copyto(codes, scratch, casting="unsafe")


def lower_cells(rows: int) -> int:
    """Values per head of a LAYOUT_LOWER block of `rows` rows: row r holds r + 1."""
    return rows * (rows + 1) // 2


def pack_lower(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(heads, R, R) `values` as LAYOUT_LOWER (heads, R(R+1)/2): each row's first r + 1 values, rows in order.

    Writes into `out` ((heads, R(R+1)/2), `values`' dtype) when given; one slice copy per row, all heads at once.
    """
    heads, rows, cols = values.shape
    if rows != cols:
        raise ValueError(f"the lower layout needs a square block, not {rows} x {cols}")
    if out is None:
        out = np.empty((heads, lower_cells(rows)), values.dtype)
    at = 0
    for r in range(rows):
        out[:, at:at + r + 1] = values[:, r, :r + 1]
        at += r + 1
    return out


#: Rows quantized at a time in a LAYOUT_LOWER layer (rows a..b-1 need their first b columns only).
ROWS_AT_ONCE = 128


def quantize_layer(values: np.ndarray, layout: str = LAYOUT_DENSE) -> tuple[np.ndarray, np.ndarray]:
    """`quantize` of (heads, R, C) `values` one head at a time through one reused scratch buffer (no temporaries
    of the layer's size): (uint8 (heads, R*C) or, LAYOUT_LOWER, (heads, R(R+1)/2), scale (heads, R)).

    LAYOUT_LOWER quantizes the lower triangle only (in bands of ROWS_AT_ONCE rows, about half the work): the
    cells above the diagonal are masked, so 0, and a row's max is its allowed cells' max.
    """
    heads, rows, cols = values.shape
    codes = np.empty((heads, rows, cols), np.uint8)
    scale = np.zeros((heads, rows), np.float32)
    if not cols:
        return codes.reshape(heads, -1), scale
    band = ROWS_AT_ONCE if layout == LAYOUT_LOWER else rows
    scratch = np.empty((min(band, rows), cols), np.float32)
    for h in range(heads):
        head = np.asarray(values[h], dtype=np.float32)
        for a in range(0, rows, band):
            b = min(rows, a + band)
            width = b if layout == LAYOUT_LOWER else cols
            _quantize_into(head[a:b, :width], codes[h, a:b, :width], scale[h, a:b], scratch[:b - a, :width])
    return (pack_lower(codes) if layout == LAYOUT_LOWER else codes.reshape(heads, -1)), scale


def make_block(kind: str, layer: int, values: np.ndarray, dtype: str = DTYPE, pool: int = 1,
               q0: int = 0, k0: int = 0, layout: str = LAYOUT_DENSE) -> ValueBlock:
    """A value block of (heads, rows, columns) `values` as float32 or uint8 (with its row scales), every cell
    (LAYOUT_DENSE) or, LAYOUT_LOWER, the lower triangle of a square block (the cells above it must be masked)."""
    shape = [int(s) for s in values.shape]
    if layout not in (LAYOUT_DENSE, LAYOUT_LOWER):
        raise ValueError(f"layout must be {LAYOUT_DENSE!r} or {LAYOUT_LOWER!r}, not {layout!r}")
    block: ValueBlock = {"kind": kind, "layer": int(layer), "dtype": dtype, "shape": shape, "pool": int(pool),
                         "q0": int(q0), "k0": int(k0), "layout": layout, "data": b""}
    if dtype == DTYPE:
        values = np.ascontiguousarray(values, dtype="<f4")
        block["data"] = (pack_lower(values) if layout == LAYOUT_LOWER else values).tobytes()
        return block
    if dtype == DTYPE_UINT8:
        codes, scale = quantize_layer(values, layout)
        block["data"], block["scale"] = codes.tobytes(), scale.astype("<f4").tobytes()
        return block
    raise RequestError(f"dtype must be {DTYPE!r} or {DTYPE_UINT8!r}, not {dtype!r}")


def block_parts(block: ValueBlock) -> tuple[BlockHeader, list[bytes]]:
    """A value block as a reply sends it: the header, and its bytes as buffers ([data] or [data, scale])."""
    header: BlockHeader = {"kind": block["kind"], "layer": block["layer"], "dtype": block["dtype"],
                           "shape": block["shape"], "pool": block["pool"], "q0": block["q0"], "k0": block["k0"],
                           "layout": block.get("layout", LAYOUT_DENSE)}
    return header, [block["data"], *([block["scale"]] if "scale" in block else [])]


def layer_layout(trace: Trace, kind: str) -> str:
    """How whole layers of `kind` cross: LAYOUT_LOWER for a causal kind (the cells above the diagonal are
    masked), else LAYOUT_DENSE."""
    return LAYOUT_LOWER if mask_type(trace, kind)[0] == MASK_CAUSAL else LAYOUT_DENSE


def topk_parts(block: TopKBlock) -> tuple[TopKHeader, list[bytes]]:
    """A top-k block as a reply sends it: the header, and buffers [index, data]."""
    header: TopKHeader = {"kind": block["kind"], "layer": block["layer"], "dtype": block["dtype"],
                          "shape": block["shape"]}
    return header, [block["index"], block["data"]]


def layout_cells(rows: int, cols: int, layout: str = LAYOUT_DENSE) -> int:
    """Values per head a block of `rows` x `cols` sends in `layout`."""
    return lower_cells(rows) if layout == LAYOUT_LOWER else rows * cols


def block_nbytes(heads: int, rows: int, cols: int, dtype: str, layout: str = LAYOUT_DENSE) -> int:
    """Bytes of a value block's data (and scale)."""
    cells = layout_cells(rows, cols, layout)
    return heads * cells * 4 if dtype == DTYPE else heads * cells + heads * rows * 4


def layer_nbytes(trace: Trace, kind: str, dtype: str = DTYPE, pool: int = 1) -> int:
    """Bytes of one whole layer of `kind` at `pool`, as `dtype` (in the kind's `layer_layout`)."""
    _, heads, q, k = trace.shape(kind)
    return block_nbytes(heads, -(-q // pool), -(-k // pool), dtype, layer_layout(trace, kind))


def layer_pool(trace: Trace, kind: str, pool: int | None) -> int:
    """The pool a whole-layer request gets: at least the kind's, a multiple of it."""
    base = kind_pool(trace, kind)
    if pool is None:
        return base
    pool = integer(pool, "pool")
    if pool < 1:
        raise RequestError(f"pool must be at least 1, got {pool}")
    return max(base, -(-pool // base) * base)


def kind_pool(trace: Trace, kind: str) -> int:
    """The finest pool a whole layer of `kind` comes at: 1, or a streamed kind's overview tile."""
    return int(trace.store(kind).pool)


def pooled_layer(trace: Trace, kind: str, layer: int, pool: int) -> np.ndarray:
    """One layer max-pooled over `pool` x `pool` tiles, (heads, ceil(Q/pool), ceil(K/pool)) float32.

    `pool` must be a multiple of `kind_pool` (see `layer_pool`).
    """
    return trace.store(kind).pooled(layer, pool)


def encode_layer(trace: Trace, kind: str, layer: int, dtype: str = DTYPE, pool: int | None = None) -> ValueBlock:
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
    return make_block(kind, layer, pooled_layer(trace, kind, layer, pool), dtype, pool,
                      layout=layer_layout(trace, kind))


def encode_block(trace: Trace, kind: str, layer: int, q0: int, q1: int, k0: int, k1: int) -> ValueBlock:
    """Exact float32 weights of queries q0:q1 and keys k0:k1 (ends clamped to the matrix)."""
    layer = _layer_index(trace, kind, layer)
    _, _, nq, nk = trace.shape(kind)
    q0, q1, k0, k1 = (integer(v, name) for v, name in ((q0, "q0"), (q1, "q1"), (k0, "k0"), (k1, "k1")))
    q1, k1 = min(q1, nq), min(k1, nk)
    if not (0 <= q0 < q1 and 0 <= k0 < k1):
        raise RequestError(f"empty or negative block: queries {q0}:{q1} of {nq}, keys {k0}:{k1} of {nk}")
    cells = (q1 - q0) * (k1 - k0)
    if cells > MAX_BLOCK_CELLS:
        raise RequestError(f"a block of {q1 - q0} x {k1 - k0} cells is more than one request gets "
                           f"({MAX_BLOCK_CELLS} per head): ask for a smaller window")
    values = trace.block(kind, layer, q0, q1, k0, k1)
    return make_block(kind, layer, values, DTYPE, 1, q0, k0)


def encode_topk(trace: Trace, kind: str, layer: int, k: int | None = None) -> TopKBlock:
    """Each query row's `k` (default: all the store gives) largest weights and their keys."""
    layer = _layer_index(trace, kind, layer)
    values, index = trace.store(kind).top_keys(layer, k)
    return {"kind": kind, "layer": int(layer), "dtype": DTYPE_TOPK, "shape": [int(s) for s in values.shape],
            "index": np.ascontiguousarray(index, dtype="<i4").tobytes(),
            "data": np.ascontiguousarray(values, dtype="<f4").tobytes()}


def topk_width(trace: Trace, kind: str) -> int:
    """k of the kind's top-k blocks."""
    return int(trace.store(kind).top_width)


def integer(value: object, name: str) -> int:
    """`value` (from a request: any JSON) as an int, or a RequestError naming `name`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise RequestError(f"{name} must be an integer, got {value!r}")


def _layer_index(trace: Trace, kind: str, layer: object) -> int:
    if kind not in trace.attentions:
        raise RequestError(f"this trace has no {kind!r} attention; it has {list(trace.kinds)}")
    layer = integer(layer, "layer")
    layers = trace.shape(kind)[0]
    if not 0 <= layer < layers:
        raise RequestError(f"{kind} attention has layers 0..{layers - 1}, not {layer}")
    return layer
