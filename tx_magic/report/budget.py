"""Which layers a report holds: every layer, exactly (float32), while the page stays under its budget.

Layers are added in rounds (layer 0 of every text and kind, then layer 1, ...), so every text
keeps its first layers when space runs out. What is left out is listed in a notice the
report shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import TxMagicError
from ..trace import Trace


class ReportTooLarge(TxMagicError):
    """Even the first layer of every text and kind does not fit in the report's budget."""


@dataclass(frozen=True)
class LayerPlan:
    """For one text: the layers, per kind, that go into the page and those left out, and what one
    layer of each kind costs in the page (bytes)."""

    included: dict[str, list[int]]
    omitted: dict[str, list[int]]
    cost: dict[str, int]


def plan_layers(traces: Sequence[Trace], available: int, block_cost: Callable[[Trace, str], int]) -> list[LayerPlan]:
    """Choose the layers of each trace that fit in `available` bytes.

    `block_cost(trace, kind)` is what one layer of that kind adds to the page. The first layer
    of every kind is always kept; `ReportTooLarge` when even those do not fit.
    """
    included: list[dict[str, list[int]]] = [{k: [] for k in t.kinds} for t in traces]
    costs = [{k: block_cost(t, k) for k in t.kinds} for t in traces]
    least = sum(c for per in costs for c in per.values())
    if least > available:
        raise ReportTooLarge(
            f"The report needs {size_text(least)} for the first layer of each text alone, more than its "
            f"budget allows ({size_text(max(available, 0))} after the page itself): give a larger budget "
            "(--max-bytes, max_bytes=...) or fewer tokens (--max-tokens)."
        )
    left = available
    deepest = max(t.shape(k)[0] for t in traces for k in t.kinds)
    for layer in range(deepest):
        for i, trace in enumerate(traces):
            for kind in trace.kinds:
                if layer >= trace.shape(kind)[0]:
                    continue
                cost = costs[i][kind]
                if layer == 0 or cost <= left:
                    included[i][kind].append(layer)
                    left -= cost
    return [
        LayerPlan(inc, {k: sorted(set(range(t.shape(k)[0])) - set(inc[k])) for k in t.kinds}, cost)
        for t, inc, cost in zip(traces, included, costs)
    ]


def notice(trace: Trace, plan: LayerPlan, max_bytes: int) -> str | None:
    """The sentence a report shows when layers of `trace` were left out, else None."""
    parts = [
        f"{kind} layers {ranges(layers)} (of {trace.shape(kind)[0]}; {size_text(plan.cost[kind])} each)"
        for kind, layers in plan.omitted.items() if layers
    ]
    if not parts:
        return None
    return (
        f"Left out of this report to keep it under {size_text(max_bytes)}: {', '.join(parts)}. "
        "To include them, write it with a larger budget (--max-bytes, max_bytes=...) or fewer tokens (--max-tokens)."
    )


def ranges(numbers: Sequence[int]) -> str:
    """`[1, 2, 3, 5]` -> "1-3, 5"."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def size_text(n: int) -> str:
    """A byte count for people: "840 KB", "12.6 MB"."""
    return f"{n / 1e3:.0f} KB" if n < 1e6 else f"{n / 1e6:.1f} MB"
