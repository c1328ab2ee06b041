"""`trace.stats()`: one row per (layer, head) with its statistics and head type."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.attention import ReducedAttention
from ..core.trace import Trace
from .labels import head_types
from .reduced import streamed_stats
from .stats import STAT_NAMES, head_stats
from .userstats import user_stats


def head_summary(trace: Trace, kind: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each statistic of `STAT_NAMES` as (layers, heads), and each head's type ("" for none), for any store:
    from every weight, or from the per-row values a streamed capture kept."""
    store = trace.store(kind)
    if isinstance(store, ReducedAttention):
        return streamed_stats(store)
    att = trace.attention(kind)
    queries, keys = trace.tokens(kind)
    same = queries is keys
    stats = head_stats(att, same_sequence=same)
    return stats, head_types(att, trace.mask(kind), queries.ids if same else None, same_sequence=same)


def stats_records(trace: Trace, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per (layer, head): the statistics of `tx_magic.analysis.stats`, the registered ones
    (`tx_magic.register_statistic`) and the head type."""
    kind = kind or trace.kinds[0]
    stats, labels = head_summary(trace, kind)
    extra = user_stats(trace, kind)
    layers, heads = trace.shape(kind)[:2]
    return [
        {"kind": kind, "layer": layer, "head": head,
         **{name: float(stats[name][layer, head]) for name in STAT_NAMES},
         **{name: float(values[layer, head]) for name, values in extra.items()},
         "type": labels[layer, head]}
        for layer in range(layers) for head in range(heads)
    ]


def stats_table(trace: Trace, kind: str | None = None) -> Any:
    """`stats_records` as a pandas DataFrame when pandas is installed, else the list of dicts."""
    records = stats_records(trace, kind)
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame.from_records(records)
