"""Analyse a `Trace`: per-head statistics, head-type labels and attention rollout."""

from __future__ import annotations

from typing import Any

from .head_types import LABELS, head_types
from .rollout import attention_rollout, rollout
from .stats import STAT_NAMES, head_stats

__all__ = ["LABELS", "STAT_NAMES", "attention_rollout", "head_stats", "head_types", "rollout", "stats_records",
           "stats_table"]


def stats_records(trace: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per (layer, head): the statistics of `tx_magic.analysis.stats` and the head type."""
    kind = kind or trace.kinds[0]
    att = trace.attention(kind)
    queries, keys = trace.tokens(kind)
    same = queries is keys
    stats = head_stats(att, same_sequence=same)
    labels = head_types(att, trace.mask(kind), queries.ids if same else None, same_sequence=same)
    layers, heads = att.shape[:2]
    return [
        {"kind": kind, "layer": layer, "head": head,
         **{name: float(stats[name][layer, head]) for name in STAT_NAMES},
         "type": labels[layer, head]}
        for layer in range(layers) for head in range(heads)
    ]


def stats_table(trace: Any, kind: str | None = None) -> Any:
    """`stats_records` as a pandas DataFrame when pandas is installed, else the list of dicts."""
    records = stats_records(trace, kind)
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame.from_records(records)
