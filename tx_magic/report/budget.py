"""Which layers a report holds, and how, while the page stays under its budget.

The encoding is chosen once for the whole report, finest first (see `tx_magic.wire`):

1. every layer exact (float32), if all fit;
2. else 8-bit values (uint8, within 0.2 % of each row's largest weight), every layer if they fit;
3. else max-pooled tiles of 2, 4, ... tokens a side (long and streamed traces), while the matrices
   keep at least MIN_TILES tiles a side; streamed kinds also carry each token's top keys (arcs).

If not every layer fits even then, layers are added in rounds (layer 0 of every text and kind, then
layer 1, ...), so every text keeps its first layers; the thumbnails in each text's meta still show
every layer and head. What is left out, pooled or quantized is said in a notice the report shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .. import wire
from ..core.errors import TxMagicError
from ..core.trace import Trace

#: Pooling stops coarsening (and layers are left out instead) at this many tiles a side.
MIN_TILES = 256
#: Top keys per token kept for a streamed kind's arcs in a report.
REPORT_TOP_K = 4


class ReportTooLarge(TxMagicError):
    """Even the first layer of every text and kind does not fit in the report's budget."""


@dataclass(frozen=True)
class Encoding:
    """How a report's layers are stored: `dtype` (float32 / uint8) at `pool` (raised per kind to its own)."""

    dtype: str = wire.DTYPE
    pool: int = 1

    def pool_of(self, trace: Trace, kind: str) -> int:
        return wire.layer_pool(trace, kind, self.pool)

    def top_k(self, trace: Trace, kind: str) -> int:
        """Top keys per token stored with each layer: only for streamed kinds (no exact weights)."""
        return min(REPORT_TOP_K, wire.topk_width(trace, kind)) if trace.is_streamed(kind) else 0


#: What one layer of a kind adds to the page (bytes), stored as the encoding says.
BlockCost = Callable[[Trace, str, Encoding], int]


@dataclass(frozen=True)
class LayerPlan:
    """For one text: the layers, per kind, that go into the page and those left out, what one
    layer of each kind costs in the page (bytes), and how the layers are stored."""

    included: dict[str, list[int]]
    omitted: dict[str, list[int]]
    cost: dict[str, int]
    encoding: Encoding = field(default_factory=Encoding)


def encodings(traces: Sequence[Trace]) -> Iterator[Encoding]:
    """float32, uint8, then uint8 max-pooled 2, 4, ... up to the longest sequence."""
    yield Encoding(wire.DTYPE, 1)
    longest = max(max(t.shape(k)[2:]) for t in traces for k in t.kinds)
    pool = 1
    while True:
        yield Encoding(wire.DTYPE_UINT8, pool)
        if pool >= longest:
            return
        pool *= 2


def plan_report(traces: Sequence[Trace], available: int, block_cost: BlockCost) -> list[LayerPlan]:
    """The finest encoding at which every layer of every text fits in `available` bytes; else the
    coarsest allowed (MIN_TILES a side) with the layers that fit, in rounds. `ReportTooLarge` when not
    even the first layer of each text fits at any pool."""
    longest = max(max(t.shape(k)[2:]) for t in traces for k in t.kinds)
    cap = max(1, longest // MIN_TILES)
    chosen = None
    for enc in encodings(traces):
        costs = [{k: block_cost(t, k, enc) for k in t.kinds} for t in traces]
        total = sum(c * t.shape(k)[0] for t, per in zip(traces, costs, strict=True) for k, c in per.items())
        if total <= available:
            return plan_layers(traces, available, _at(block_cost, enc), enc)
        if chosen is None and enc.dtype == wire.DTYPE_UINT8 and enc.pool >= cap:
            chosen = enc
        if chosen is not None and sum(c for per in costs for c in per.values()) <= available:
            return plan_layers(traces, available, _at(block_cost, enc), enc)
    first = [{k: block_cost(t, k, Encoding(wire.DTYPE_UINT8, longest)) for k in t.kinds} for t in traces]
    least = sum(c for per in first for c in per.values())
    raise ReportTooLarge(
        f"The report needs {size_text(least)} for the first layer of each text alone, more than its "
        f"budget allows ({size_text(max(available, 0))} after the page itself): give a larger budget "
        "(--max-bytes, max_bytes=...) or fewer tokens (--max-tokens)."
    )


def _at(block_cost: BlockCost, enc: Encoding) -> Callable[[Trace, str], int]:
    """`block_cost` at one encoding."""
    return lambda trace, kind: block_cost(trace, kind, enc)


def plan_layers(traces: Sequence[Trace], available: int, block_cost: Callable[[Trace, str], int],
                encoding: Encoding | None = None) -> list[LayerPlan]:
    """Choose the layers of each trace that fit in `available` bytes.

    `block_cost(trace, kind)` is what one layer of that kind adds to the page. The first layer
    of every kind is always kept; `ReportTooLarge` when even those do not fit.
    """
    encoding = encoding or Encoding()
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
        LayerPlan(inc, {k: sorted(set(range(t.shape(k)[0])) - set(inc[k])) for k in t.kinds}, cost, encoding)
        for t, inc, cost in zip(traces, included, costs, strict=True)
    ]


def notice(trace: Trace, plan: LayerPlan, max_bytes: int) -> str | None:
    """The sentences a report shows when layers of `trace` were left out, pooled or quantized, else None."""
    enc = plan.encoding
    lines = []
    parts = [
        f"{kind} layers {ranges(layers)} (of {trace.shape(kind)[0]}; {size_text(plan.cost[kind])} each)"
        for kind, layers in plan.omitted.items() if layers
    ]
    if parts:
        lines.append(
            f"Left out of this report to keep it under {size_text(max_bytes)}: {', '.join(parts)}; the grid's "
            "thumbnails still show every layer. To include them, write it with a larger budget (--max-bytes, "
            "max_bytes=...) or fewer tokens (--max-tokens)."
        )
    pooled = {kind: enc.pool_of(trace, kind) for kind in trace.kinds if enc.pool_of(trace, kind) > 1}
    if pooled:
        lines.append("Matrices are drawn from max-pooled tiles (each cell is the largest weight of its tile): "
                     + ", ".join(f"{kind} {p}x{p} tokens" for kind, p in pooled.items()) + ".")
    if enc.dtype == wire.DTYPE_UINT8:
        lines.append("Weights are stored as 8-bit values, each within 0.2 % of its row's largest weight.")
    arcs = [f"{kind} {enc.top_k(trace, kind)}" for kind in trace.kinds if enc.top_k(trace, kind)]
    if arcs:
        lines.append(f"Arcs show each token's top keys ({', '.join(arcs)} per token).")
    if not lines:
        return None
    lines.append("This static report has no kernel: exact values beyond what it holds are not available here "
                 "(show the trace in the widget, or read trace.block(...) in Python).")
    return " ".join(lines)


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
