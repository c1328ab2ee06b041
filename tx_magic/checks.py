"""Checks on attention arrays as a `Trace` receives them (from capture, or by hand through `show`).

Shapes that cannot be drawn are refused with a `ShapeError`; arrays too big to copy with a
`MemoryBudgetError`; odd values (NaN/inf, negative weights, rows that do not sum to 1) are
drawn as given, with a warning the widget shows.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import MemoryBudgetError, ShapeError

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
    from .memory import GIB, available_bytes

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


def value_warnings(attentions: Mapping[str, np.ndarray], already: Sequence[str] = ()) -> list[str]:
    """One warning per kind and problem: NaN/inf, negative weights, rows not summing to 1.

    A problem some warning in `already` names for that kind (e.g. from `tx_magic.arrays`) is not repeated.
    """
    said = lambda kind, word: any(f" {kind} " in w and word in w for w in already)  # noqa: E731
    out = []
    for kind, att in attentions.items():
        if not isinstance(att, np.ndarray):
            continue  # streamed: made by tx_magic from softmax outputs
        bad = negative = off = rows = 0
        worst = 1.0
        for layer in att:  # one layer at a time: temporaries stay small
            if _looks_clean(layer):  # the common case (a model's softmax): two quick passes
                rows += layer.size // max(layer.shape[-1], 1)
                continue
            finite = np.isfinite(layer)
            bad += int(layer.size - np.count_nonzero(finite))
            clean = np.where(finite, layer, 0)
            negative += int(np.count_nonzero(clean < 0))
            sums = clean.sum(axis=-1, dtype=np.float64)
            wrong = (np.abs(sums - 1) > ROW_SUM_TOLERANCE) & (sums != 0)  # an all-zero row is a masked row
            off += int(np.count_nonzero(wrong))
            rows += sums.size
            if wrong.any():
                worst = max(worst, float(np.abs(sums[wrong] - 1).max()) + 1)
        bad, negative, off = (0 if said(kind, "NaN") else bad, 0 if said(kind, "negative") else negative,
                              0 if said(kind, "sum to 1") else off)
        if bad:
            out.append(f"{bad} {kind} attention weights were NaN or infinite (shown as masked).")
        if negative:
            out.append(f"{negative} {kind} attention weights are negative: attention probabilities are >= 0; "
                       "negative weights are drawn as 0.")
        if off:
            out.append(f"{off} of {rows} {kind} attention rows do not sum to 1 (off by up to {worst - 1:.3g}): "
                       "these may be scores, not probabilities; apply softmax over the keys first.")
    return out
