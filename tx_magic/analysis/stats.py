"""Per-head attention statistics over a (layers, heads, queries, keys) array.

Every statistic is a mean over query rows, as in the annotated-transformer tutorial:

- ``entropy``: -sum_k p log(p + 1e-10), in nats;
- ``max_weight``: the row's largest weight;
- ``dispersion``: 1 - max_weight;
- ``distance``: sum_k p |q - k|, the mean distance attended over (self-attention only);
- ``first``: weight on the first key (the "sink"), over rows q >= 1;
- ``previous``: weight on key q - 1, over rows q >= 1 (self-attention only);
- ``self``: weight on key q (self-attention only).

Rows that a mask leaves empty do not count. Statistics that need queries and keys from
the same sequence are NaN for cross-attention. `js/src/stats.ts` computes the same numbers.
"""

from __future__ import annotations

import numpy as np

STAT_NAMES = ("entropy", "max_weight", "dispersion", "distance", "first", "previous", "self")
ENTROPY_EPS = 1e-10


def head_stats(att: np.ndarray, *, same_sequence: bool = True) -> dict[str, np.ndarray]:
    """Each statistic as a (layers, heads) float64 array. NaN/inf weights count as 0."""
    p = np.nan_to_num(np.asarray(att, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if p.ndim != 4:
        raise ValueError(f"attention must be (layers, heads, queries, keys), got shape {p.shape}")
    _, _, nq, nk = p.shape
    live = p.sum(-1) > 0  # (L, H, Q): rows with any weight
    entropy = -(p * np.log(p + ENTROPY_EPS)).sum(-1)
    max_weight = p.max(-1)
    out = {"entropy": _row_mean(entropy, live), "max_weight": _row_mean(max_weight, live)}
    out["dispersion"] = 1.0 - out["max_weight"]
    later = live.copy()
    later[..., 0] = False
    out["first"] = _row_mean(p[..., 0], later) if nq > 1 else np.full(p.shape[:2], np.nan)
    if same_sequence and nq == nk:
        q = np.arange(nq)
        dist = np.abs(q[:, None] - q[None, :])
        out["distance"] = _row_mean((p * dist).sum(-1), live)
        out["self"] = _row_mean(p[..., q, q], live)
        prev = np.zeros(p.shape[:3])
        prev[..., 1:] = p[..., q[1:], q[1:] - 1]
        out["previous"] = _row_mean(prev, later) if nq > 1 else np.full(p.shape[:2], np.nan)
    else:
        nan = np.full(p.shape[:2], np.nan)
        out.update(distance=nan, self=nan.copy(), previous=nan.copy())
    return {name: out[name] for name in STAT_NAMES}


def _row_mean(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean of `values` (L, H, Q) over the rows where `rows` is True; NaN where none are."""
    count = rows.sum(-1)
    total = np.where(rows, values, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
