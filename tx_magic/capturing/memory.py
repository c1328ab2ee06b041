"""Estimate a capture's memory before running it, and choose how to capture.

- ``full``: every weight as float32 (layers x heads x queries x keys), kept while the estimate
  stays under FULL_LIMIT and half of the free memory;
- ``streamed``: long inputs reduced layer by layer (`tx_magic.streamed`), kept while the
  estimate stays under STREAMED_LIMIT (8 GB: 32768 tokens of a 16-layer, 16-head model) and 80% of
  the free memory;
- otherwise the capture is refused before it starts, with the number of tokens that would fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from ..core.attention import ROW_STATS
from ..core.errors import MemoryBudgetError
from ..core.resources import GIB, available_bytes
from ..core.tiles import THUMBNAIL_SIZE
from .streamed import chunk_rows, tile_for

FULL = "full"
STREAMED = "streamed"
#: Full captures up to this estimate. Measured (benchmarks/bench_capture.py, 2-core CPU): a Llama shape at
#: 2048 tokens (2.1 GiB) runs explain() in 1.93 s full and 2.39 s streamed; GPT-2 small at 2048 (2.8 GiB)
#: in 4.73 s full and 3.97 s streamed: past about 2 GB of weights, writing them costs more than reducing.
FULL_LIMIT = int(2.5 * GIB)
STREAMED_LIMIT = 8 * GIB
OVERVIEW_TILES = 512
TOP_K = 8


def config_int(config: Any, *names: str) -> int | None:
    """The first of the config's attributes `names` that is an int (configs name sizes differently)."""
    return next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None)


@dataclass(frozen=True)
class Shape:
    """What decides a capture's size: layers, query heads, key/value heads, head size."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, model: Any) -> Shape | None:
        config = getattr(model, "config", None)
        get = functools.partial(config_int, config)
        layers = get("num_hidden_layers", "n_layer", "num_layers")
        heads = get("num_attention_heads", "n_head", "num_heads")
        if not layers or not heads:
            return None
        hidden = get("hidden_size", "n_embd", "d_model") or heads * 64
        return cls(layers, heads, get("num_key_value_heads") or heads, get("head_dim") or hidden // heads)


def full_bytes(shape: Shape, n: int, copies: int = 2) -> int:
    """Float32 weights of every layer, held `copies` times (2: the model's outputs and the trace; 1: written
    straight into the trace, `tx_magic.capturing.dense`) plus one layer's work."""
    per_layer = shape.heads * n * n * 4
    return copies * shape.layers * per_layer + 3 * per_layer


def encoder_decoder_bytes(model: Any, n: int, target: int) -> int:
    """`full_bytes` of an encoder-decoder: encoder (n x n), decoder (t x t) and cross (t x n) weights."""
    config = getattr(model, "config", None)

    def get(*names: str) -> int:
        return config_int(config, *names) or 0

    enc_layers = get("encoder_layers", "num_layers", "num_hidden_layers")
    dec_layers = get("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers")
    enc_heads = get("encoder_attention_heads", "num_heads", "num_attention_heads")
    dec_heads = get("decoder_attention_heads", "num_heads", "num_attention_heads")
    cells = [(enc_layers, enc_heads * n * n), (dec_layers, dec_heads * target * target),
             (dec_layers, dec_heads * target * n)]
    return sum(2 * layers * per * 4 + 3 * per * 4 for layers, per in cells)


def streamed_bytes(shape: Shape, n: int) -> int:
    """What a streamed capture holds: what it keeps (`streamed_kept_bytes`), plus the reduction's two chunk
    buffers with their per-row tile maxima, the model's own work on one layer (`model_work_bytes`), and one
    layer's queries twice while the result gathers them, and the trace's causal mask (n x n bytes, built after
    the pass while the rest is held)."""
    tile = tile_for(n, OVERVIEW_TILES)
    chunk = shape.heads * min(n, chunk_rows(n, shape.heads, tile)) * n * 4
    moved = shape.heads * n * shape.head_dim * 4
    return streamed_kept_bytes(shape, n) + 2 * chunk + chunk // tile + model_work_bytes(shape, n) + moved + n * n


def streamed_kept_bytes(shape: Shape, n: int) -> int:
    """Every layer's queries, keys, overview tiles, thumbnails, top keys, row statistics and log-sum-exps
    (`ReducedAttention.nbytes` of the capture, for n >= TOP_K)."""
    tiles = (-(-n // tile_for(n, OVERVIEW_TILES))) ** 2
    thumbs = min(n, THUMBNAIL_SIZE) ** 2
    return shape.layers * 4 * (shape.heads * n * shape.head_dim + shape.kv_heads * n * shape.head_dim
                               + shape.heads * (tiles + thumbs) + shape.heads * n * (2 * TOP_K + len(ROW_STATS) + 1))


def model_work_bytes(shape: Shape, n: int) -> int:
    """The model's own activations of one layer with sdpa, as float32: queries, keys, values before and after
    position encoding (keys and values repeated for the heads they serve) and the attention output."""
    return 4 * n * shape.head_dim * 4 * (shape.heads + 2 * shape.kv_heads)


@dataclass(frozen=True)
class Plan:
    mode: str
    estimate: int


def plan_capture(model: Any, n: int, *, streamable: bool, available: int | None = None,
                 target: int | None = None, copies: int = 2) -> Plan:
    """Full while it fits, else streamed (if the model allows), else a MemoryBudgetError.

    `target` is the decoder length of an encoder-decoder (its three kinds are counted; never streamed).
    `copies`: how many times a full capture holds every weight (see `full_bytes`).
    """
    free = available_bytes() if available is None else available
    if target is not None:
        return _plan_encoder_decoder(model, n, target, free)
    shape = Shape.of(model)
    if shape is None:
        return Plan(FULL, 0)  # unknown layout: nothing to estimate from
    full = full_bytes(shape, n, copies)
    if full <= min(FULL_LIMIT, free / 2 if free else FULL_LIMIT):
        return Plan(FULL, full)
    if streamable:
        streamed = streamed_bytes(shape, n)
        if streamed <= min(STREAMED_LIMIT, 0.8 * free if free else STREAMED_LIMIT):
            return Plan(STREAMED, streamed)
        room = min(STREAMED_LIMIT, 0.8 * free if free else STREAMED_LIMIT)
        fits = _largest_n(lambda m: streamed_bytes(shape, m) <= room)
        need = streamed
    else:
        fits = _largest_n(lambda m: full_bytes(shape, m, copies) <= min(FULL_LIMIT, free / 2 if free else FULL_LIMIT))
        need = full
    raise MemoryBudgetError(
        f"Capturing {n} tokens would take about {need / GIB:.1f} GB"
        + (f" ({free / GIB:.1f} GB free)" if free else "")
        + f"; about {fits} tokens fit. Pass max_tokens={fits} (in the magic: --max-tokens {fits}), "
        "or free memory and try again."
    )


def _plan_encoder_decoder(model: Any, n: int, target: int, free: int | None) -> Plan:
    limit = min(FULL_LIMIT, free / 2 if free else FULL_LIMIT)
    need = encoder_decoder_bytes(model, n, target)
    if need <= limit:
        return Plan(FULL, need)
    fits = _largest_n(lambda m: encoder_decoder_bytes(model, min(n, m), min(target, m)) <= limit)
    raise MemoryBudgetError(
        f"Capturing {n} source and {target} target tokens would take about {need / GIB:.1f} GB"
        + (f" ({free / GIB:.1f} GB free)" if free else "")
        + f"; about {fits} tokens each fit. Pass max_tokens={fits} (in the magic: --max-tokens {fits}), "
        "or free memory and try again."
    )


def _largest_n(fits: Any) -> int:
    lo, hi = 1, 1
    while fits(hi * 2) and hi < 1 << 24:
        hi *= 2
    lo = hi
    hi = hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo if fits(lo) else max(1, int(math.sqrt(lo)))
