"""Statistics users add: ``tx_magic.register_statistic(name, fn)``.

``fn(attention, tokens) -> float`` is called on each head's (queries, keys) float32 array, with the
`Tokens` of the sequence (for cross-attention, the pair (query tokens, key tokens)). Each registered
statistic becomes a column of ``trace.stats()``, a column of the widget's Statistics tab and a
colouring of its overview grid, in widgets and reports: computed here, in Python, and sent with the
data (``user_stats`` of each kind on the wire), so the browser never needs the function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.errors import OptionError
from ..core.trace import Trace
from .patterns import per_head
from .stats import STAT_NAMES

StatisticFn = Callable[[np.ndarray, Any], float]
#: Names a user statistic may not take: the table's own columns.
RESERVED = frozenset({*STAT_NAMES, "kind", "layer", "head", "type"})
#: Largest layer (bytes of float32 weights) a streamed capture recomputes for user statistics.
MAX_LAYER_BYTES = 256 * 1024 * 1024
_STATISTICS: dict[str, StatisticFn] = {}


def register_statistic(name: str, fn: StatisticFn) -> None:
    """Add a per-head statistic (a later registration of `name` replaces an earlier one); see the module."""
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise OptionError(f"a statistic's name is a word (letters, digits and _), got {name!r}")
    if name in RESERVED:
        raise OptionError(f"{name!r} is a column tx_magic already has; give your statistic another name")
    if not callable(fn):
        raise OptionError(f"fn must be a function (attention, tokens) -> float, got {type(fn).__name__}")
    _STATISTICS[name] = fn


def unregister_statistic(name: str) -> None:
    """Remove a registered statistic."""
    if name not in _STATISTICS:
        raise OptionError(f"no statistic {name!r} is registered; registered: {sorted(_STATISTICS) or 'none'}")
    del _STATISTICS[name]


def registered_statistics() -> tuple[str, ...]:
    """Names of the registered statistics, in the order they were registered."""
    return tuple(_STATISTICS)


def user_stats(trace: Trace, kind: str | None = None) -> dict[str, np.ndarray]:
    """Every registered statistic of every head of `kind`: name -> (layers, heads) float64.

    A streamed capture (a long input) recomputes each layer's exact weights for them, up to
    MAX_LAYER_BYTES a layer; beyond it the values are NaN.
    """
    if not _STATISTICS:
        return {}
    kind = kind or trace.kinds[0]
    layers, heads, nq, nk = trace.shape(kind)
    queries, keys = trace.tokens(kind)
    tokens: Any = queries if queries is keys else (queries, keys)
    out = {name: np.full((layers, heads), np.nan) for name in _STATISTICS}
    if trace.is_streamed(kind) and heads * nq * nk * 4 > MAX_LAYER_BYTES:
        return out
    for layer in range(layers):
        weights = trace.layer(kind, layer)[None]
        for name, fn in _STATISTICS.items():
            out[name][layer] = per_head(weights, tokens, fn, "statistic", name)[0]
    return out
