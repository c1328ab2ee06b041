"""What the widget sends with itself (the ``_layers`` trait): the finest blocks that fit the eager budget."""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis import STAT_NAMES
from ..core.trace import Trace
from .blocks import encode_layer, encode_topk, kind_pool, layer_nbytes, topk_width
from .masks import mask_type
from .schema import DTYPE, DTYPE_TOPK, DTYPE_UINT8, EAGER_BUDGET, MASK_EXPLICIT, THUMBNAIL_SIZE, TopKBlock, ValueBlock

#: Bytes of value blocks the first view gets when not every layer fits (Python only): what the first-drawn
#: views show, so that a slow link draws them in about a second; the renderer fetches finer levels as it needs.
FIRST_VIEW_BUDGET = 1024 * 1024

#: One entry of the ``_layers`` trait.
Block = ValueBlock | TopKBlock


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
    total = 0
    for kind in trace.kinds:
        layers, heads, q, k = trace.shape(kind)
        total += layers * heads * max(1, min(THUMBNAIL_SIZE, q, k)) ** 2
        if mask_type(trace, kind)[0] == MASK_EXPLICIT:
            total += q * k
        if trace.is_streamed(kind):
            total += len(STAT_NAMES) * layers * heads * 4
    if trace.image is not None:
        total += len(trace.image.png)
    return total


def eager_plan(trace: Trace, budget: int = EAGER_BUDGET, layer: int = 0,
               first_view: int = FIRST_VIEW_BUDGET) -> list[Eager]:
    """What the widget sends at once, within `budget` bytes together with the meta's binary parts:

    1. every layer as float32, if all fit; 2. else every layer as uint8, if all fit;
    3. else per kind the initial `layer` (clamped to the kind's), uint8, if it fits the kind's share of
       `first_view` (and of the budget);
    4. else that layer max-pooled at the smallest pool that fits that share, plus, streamed, its top-k block
       (whose share is the budget's: the arcs of a reduced capture have nothing else to draw from).
    """
    kinds = trace.kinds
    room = budget - meta_nbytes(trace)
    if all(kind_pool(trace, k) == 1 for k in kinds):
        for dtype in (DTYPE, DTYPE_UINT8):
            if sum(trace.shape(k)[0] * layer_nbytes(trace, k, dtype) for k in kinds) <= room:
                return [Eager(k, at, dtype) for k in kinds for at in range(trace.shape(k)[0])]
    share = room // len(kinds)
    view_share = min(room, first_view) // len(kinds)
    plan: list[Eager] = []
    for kind in kinds:
        layers, heads, q, n_keys = trace.shape(kind)
        at = min(max(layer, 0), layers - 1)
        base = kind_pool(trace, kind)
        if base == 1 and layer_nbytes(trace, kind, DTYPE_UINT8) <= view_share:
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
        left = min(left, view_share)
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


def encode_eager(trace: Trace, item: Eager) -> Block:
    """The block one `Eager` entry stands for."""
    if item.dtype == DTYPE_TOPK:
        return encode_topk(trace, item.kind, item.layer, item.k)
    return encode_layer(trace, item.kind, item.layer, item.dtype, item.pool)


def eager_layers(trace: Trace, budget: int = EAGER_BUDGET, layer: int = 0,
                 first_view: int = FIRST_VIEW_BUDGET) -> list[Block]:
    """The ``_layers`` trait: the blocks of `eager_plan`, encoded."""
    return [encode_eager(trace, item) for item in eager_plan(trace, budget, layer, first_view)]
