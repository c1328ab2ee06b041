"""Analyse a `Trace`: per-head statistics, head-type labels and attention rollout."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .head_types import LABELS, MIN_REPEATS, MIN_TOKENS, head_types, label_scores
from .rollout import attention_rollout, rollout
from .stats import STAT_NAMES, head_stats

__all__ = ["LABELS", "STAT_NAMES", "attention_rollout", "head_stats", "head_types", "rollout", "stats_records",
           "stats_table"]


def stats_records(trace: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per (layer, head): the statistics of `tx_magic.analysis.stats` and the head type."""
    kind = kind or trace.kinds[0]
    if trace.is_streamed(kind):
        stats, labels = streamed_stats(trace.attentions[kind])
    else:
        att = trace.attention(kind)
        queries, keys = trace.tokens(kind)
        same = queries is keys
        stats = head_stats(att, same_sequence=same)
        labels = head_types(att, trace.mask(kind), queries.ids if same else None, same_sequence=same)
    layers, heads = trace.shape(kind)[:2]
    return [
        {"kind": kind, "layer": layer, "head": head,
         **{name: float(stats[name][layer, head]) for name in STAT_NAMES},
         "type": labels[layer, head]}
        for layer in range(layers) for head in range(heads)
    ]


def streamed_stats(reduced: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Statistics and head types of a streamed capture, from the per-row values it kept."""
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


def stats_table(trace: Any, kind: str | None = None) -> Any:
    """`stats_records` as a pandas DataFrame when pandas is installed, else the list of dicts."""
    records = stats_records(trace, kind)
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame.from_records(records)
