"""Checks on attention arrays as a `Trace` receives them (from capture, or by hand through `show`).

Shapes that cannot be drawn are refused with a `ShapeError`; arrays too big to copy with a
`MemoryBudgetError`; odd values (NaN/inf, negative weights, rows that do not sum to 1) are
drawn as given, with one warning per kind and problem that names the first place it occurs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import MemoryBudgetError, ShapeError
from .resources import GIB, available_bytes

#: How far a row's sum may be from 1 and still count as probabilities (float16 models drift).
ROW_SUM_TOLERANCE = 0.02


def checked_attention(kind: str, att: Any, queries: Sequence[str], keys: Sequence[str]) -> np.ndarray:
    """`att` as a C-contiguous float32 (layers, heads, queries, keys) array, or a clear error."""
    shape = tuple(getattr(att, "shape", ()) or np.shape(att))
    if len(shape) != 4:
        raise ShapeError(f"attention {kind!r} must be 4-D (layers, heads, queries, keys), got shape {shape}: "
                         "add the missing axes, e.g. att[None, None] for one head of one layer.")
    if shape[2:] != (len(queries), len(keys)):
        raise ShapeError(f"attention {kind!r} has {shape[2]} x {shape[3]} query x key positions but the tokens "
                         f"are {len(queries)} x {len(keys)}: give one token per row and per column.")
    if 0 in shape:
        raise ShapeError(f"attention {kind!r} is empty (shape {shape}): give at least one layer, head and token.")
    check_copy_fits(kind, att, shape)
    return np.ascontiguousarray(att, dtype=np.float32)


def check_copy_fits(kind: str, att: Any, shape: tuple[int, ...]) -> None:
    """Refuse a conversion of `att` to float32 `shape` that would need more than half the free memory."""
    if isinstance(att, np.ndarray) and att.dtype == np.float32 and att.flags.c_contiguous:
        return  # used as it is, no copy
    need = math.prod(shape) * 4
    free = available_bytes()
    if free is not None and need > free / 2:
        raise MemoryBudgetError(
            f"attention {kind!r} {shape} would take {need / GIB:.1f} GB as float32 ({free / GIB:.1f} GB free): "
            "pass fewer layers, heads or tokens (e.g. att[:4] or att[:, :, :512, :512]), or free memory."
        )


def _looks_clean(layer: np.ndarray) -> bool:
    """True when `layer` surely has no NaN/inf, no negative weight and every row sums to 1 or 0."""
    if layer.size == 0:
        return True
    low = layer.min()
    if not np.isfinite(low) or low < 0:  # NaN propagates through min
        return False
    sums = layer.sum(axis=-1)  # float32 pairwise sums: error far below the tolerance
    if not np.isfinite(sums).all():
        return False
    return bool(np.all((np.abs(sums - 1) <= ROW_SUM_TOLERANCE / 2) | (sums == 0)))


class _Tally:
    """Counts of one problem over a kind's layers, and where it first occurs."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[int, ...] | None = None
        self.value = 0.0

    def add(self, layer: int, hits: np.ndarray, values: np.ndarray) -> None:
        n = int(np.count_nonzero(hits))
        if n and self.first is None:
            where = tuple(int(x) for x in np.argwhere(hits)[0])
            self.first, self.value = (layer, *where), float(values[where])
        self.count += n


def value_warnings(kind: str, att: np.ndarray) -> list[str]:
    """One warning per problem of `kind`'s weights (L, H, Q, K): NaN/inf, negative, rows not summing to 1.

    Each names how many and where the first is; one layer is examined at a time, so temporaries stay small.
    """
    bad, negative, off = _Tally(), _Tally(), _Tally()
    rows = 0
    for index, layer in enumerate(att):
        rows += layer.size // max(layer.shape[-1], 1)
        if _looks_clean(layer):  # the common case (a model's softmax): two quick passes
            continue
        finite = np.isfinite(layer)
        bad.add(index, ~finite, layer)
        clean = np.where(finite, layer, 0)
        negative.add(index, clean < 0, clean)
        sums = clean.sum(axis=-1, dtype=np.float64)
        off.add(index, (np.abs(sums - 1) > ROW_SUM_TOLERANCE) & (sums != 0), sums)  # all-zero rows are masked
    out = []
    if bad.count:
        out.append(f"{bad.count} {kind} attention weights are NaN or infinite (shown as masked), the first at "
                   f"{_place(bad.first)}.")
    if negative.count:
        out.append(f"{negative.count} {kind} attention weights are negative (the first at {_place(negative.first)}: "
                   f"{negative.value:.3g}); they show as 0. Are these scores? Attention is softmax(scores).")
    if off.count:
        out.append(f"{off.count} of {rows} {kind} attention rows do not sum to 1 ({_place(off.first)} sums to "
                   f"{off.value:.3g}): these may be scores, not probabilities; apply softmax over the keys first.")
    return out


def _place(where: tuple[int, ...] | None) -> str:
    names = ("layer", "head", "query", "key")  # a row's place stops at the query
    return ", ".join(f"{name} {value}" for name, value in zip(names, where or (), strict=False))


def causal_mask(n: int) -> np.ndarray:
    """(n, n) True on and below the diagonal: each token may attend to itself and earlier tokens."""
    return np.tri(n, dtype=bool)  # one n x n allocation (np.tril of np.ones held two: 2 GiB at 32768 tokens)


def looks_causal(att: np.ndarray) -> bool:
    """Whether square weights (..., n, n) put nothing above the diagonal (n > 1)."""
    n = att.shape[-1]
    return n > 1 and att.shape[-2] == n and not np.triu(np.nan_to_num(att), k=1).any()


def causal_masks(attentions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Causal masks for the self and decoder kinds whose weights put nothing above the diagonal."""
    return {kind: causal_mask(att.shape[-1]) for kind, att in attentions.items()
            if kind in ("self", "decoder") and looks_causal(att)}
