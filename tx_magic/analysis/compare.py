"""`tx_magic.compare(a, b)`: two traces side by side (two texts of equal token length, two models of
the same shape, an ablated and an original run, two checkpoints).

When every shared attention kind has the same (layers, heads, queries, keys) in both, cells line up
position by position and ``difference(kind)`` is ``a.attention(kind) - b.attention(kind)`` exactly
(float32). Otherwise (different token counts) only the per-head statistics compare, and ``cells`` is
False; ``note`` says which case this is and why. Both need the same layers x heads per shared kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import extensions
from ..core.errors import OptionError, ShapeError, TxMagicError
from ..core.trace import Trace
from .stats import STAT_NAMES
from .table import head_summary
from .userstats import user_stats


class CellsDiffer(TxMagicError):
    """The traces' cells do not line up (different token counts): compare their statistics instead."""


@dataclass
class Comparison:
    """Two traces compared: see the module docstring."""

    a: Trace
    b: Trace
    labels: tuple[str, str] = ("A", "B")
    kinds: tuple[str, ...] = field(init=False)
    #: Whether cells line up (every shared kind has the same shape in both).
    cells: bool = field(init=False)
    note: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.a, Trace) or not isinstance(self.b, Trace):
            raise OptionError(f"compare takes two Traces (tx_magic.capture(...)), got {type(self.a).__name__} "
                              f"and {type(self.b).__name__}")
        self.kinds = tuple(k for k in self.a.kinds if k in self.b.kinds)
        if not self.kinds:
            raise ShapeError(f"the traces share no attention kind: {list(self.a.kinds)} and {list(self.b.kinds)}")
        for kind in self.kinds:
            (la, ha, *_), (lb, hb, *_) = self.a.shape(kind), self.b.shape(kind)
            if (la, ha) != (lb, hb):
                raise ShapeError(f"{kind} attention: {self.labels[0]} has {la} layers x {ha} heads, "
                                 f"{self.labels[1]} {lb} x {hb}: compare models of the same shape")
        self.cells = all(self.a.shape(k) == self.b.shape(k) for k in self.kinds)
        self.note = self._describe()

    def _describe(self) -> str:
        a, b = self.labels
        if not self.cells:
            kind = next(k for k in self.kinds if self.a.shape(k) != self.b.shape(k))
            qa, ka = self.a.shape(kind)[2:]
            qb, kb = self.b.shape(kind)[2:]
            return (f"{a} has {qa}x{ka} {kind} cells, {b} {qb}x{kb}: the tokens do not line up, so only the "
                    "per-head statistics are compared")
        differ = sum(x != y for seq in self.a.sequences if seq in self.b.sequences
                     for x, y in zip(self.a.sequences[seq].ids, self.b.sequences[seq].ids, strict=False))
        if differ:
            return (f"{differ} token(s) differ between {a} and {b}: cells are compared position by position "
                    f"({a} - {b})")
        return f"same tokens: {a} - {b} cell by cell"

    def difference(self, kind: str | None = None) -> np.ndarray:
        """``a.attention(kind) - b.attention(kind)``: float32 (layers, heads, queries, keys)."""
        kind = self._kind(kind)
        if not self.cells:
            raise CellsDiffer(f"no cell-by-cell difference: {self.note}. Use .deltas() for the statistics.")
        result: np.ndarray = np.subtract(self.a.attention(kind), self.b.attention(kind), dtype=np.float32)
        return result

    def stat_deltas(self, kind: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per statistic (built-in and registered), (a's, b's) values, each (layers, heads) float64."""
        kind = self._kind(kind)
        out = {}
        stats_a, _ = head_summary(self.a, kind)
        stats_b, _ = head_summary(self.b, kind)
        for name in STAT_NAMES:
            out[name] = (stats_a[name], stats_b[name])
        user_a, user_b = user_stats(self.a, kind), user_stats(self.b, kind)
        for name in user_a:
            out[name] = (user_a[name], user_b[name])
        return out

    def deltas(self, kind: str | None = None) -> Any:
        """One row per head: each statistic in a and b and its delta (a - b), as ``{name}_a``, ``{name}_b`` and
        ``{name}_delta`` (a pandas DataFrame when pandas is installed, else a list of dicts)."""
        kind = self._kind(kind)
        values = self.stat_deltas(kind)
        layers, heads = self.a.shape(kind)[:2]
        rows = []
        for layer in range(layers):
            for head in range(heads):
                row: dict[str, Any] = {"kind": kind, "layer": layer, "head": head}
                for name, (va, vb) in values.items():
                    row[f"{name}_a"], row[f"{name}_b"] = float(va[layer, head]), float(vb[layer, head])
                    row[f"{name}_delta"] = float(va[layer, head] - vb[layer, head])
                rows.append(row)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame.from_records(rows)

    def show(self, **options: Any) -> Any:
        """The widget: A's views with a Compare tab (A, B and A - B in diverging colours, statistic deltas)."""
        return extensions.call("show_comparison", self, **options)

    def _kind(self, kind: str | None) -> str:
        kind = kind or self.kinds[0]
        if kind not in self.kinds:
            raise OptionError(f"kind must be one of {list(self.kinds)}, got {kind!r}")
        return kind

    def __repr__(self) -> str:
        return f"Comparison({self.labels[0]}={self.a!r}, {self.labels[1]}={self.b!r}: {self.note})"


def compare(a: Trace, b: Trace, *, labels: tuple[str, str] = ("A", "B")) -> Comparison:
    """Compare two traces: ``.difference(kind)`` (a - b), ``.deltas()`` (per-head statistics), ``.show()``."""
    return Comparison(a, b, labels=(str(labels[0]), str(labels[1])))
