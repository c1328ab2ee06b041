"""Statistics and head types of a streamed capture, from the per-row values it kept as the model ran."""

from __future__ import annotations

import warnings

import numpy as np

from ..core.attention import ReducedAttention
from .labels import MIN_REPEATS, MIN_TOKENS, label_scores


def streamed_stats(reduced: ReducedAttention) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Statistics (name -> (layers, heads)) and head types of a streamed capture."""
    rows = reduced.row_stats
    later = (slice(None), slice(None), slice(1, None))  # first/previous count rows 1.. (see stats.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (no induction targets) -> NaN
        stats = {
            "entropy": rows["entropy"].mean(-1), "max_weight": rows["max_weight"].mean(-1),
            "distance": rows["distance"].mean(-1), "first": rows["first"][later].mean(-1),
            "previous": rows["previous"][later].mean(-1), "self": rows["self"].mean(-1),
        }
        stats["dispersion"] = 1.0 - stats["max_weight"]
        layers, heads, n = rows["entropy"].shape
        if n < MIN_TOKENS:
            return stats, np.full((layers, heads), "", dtype=object)
        repeats = int(np.isfinite(rows["induction"][0, 0]).sum())
        scores = {"previous": stats["previous"], "first": stats["first"], "self": stats["self"],
                  "local": rows["local"].mean(-1), "broad": np.nanmean(rows["norm_entropy"], -1)}
        if repeats >= MIN_REPEATS:
            scores["induction"] = np.nanmean(rows["induction"], -1)
    return stats, label_scores(scores, (layers, heads))
