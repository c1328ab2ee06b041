"""Information flow routes (Ferrando & Voita 2024, "Information Flow Routes: Automatically Interpreting
Language Models at Scale"): which earlier (layer, token) states each state is built from.

Nodes are residual-stream states: ``in`` of layer l at token i (the layer's input: the embeddings for
l = 0, else layer l - 1's output), ``mid`` (after its attention block) and ``out`` (after its MLP block,
= ``in`` of layer l + 1). Every node is a sum of parts (`tx_magic.core.replay.Residual`):

- attention block, ``mid_i = x_i + sum_h sum_j z^h_ij + b_O`` with ``z^h_ij = a^h_ij f_h(x_j)`` and
  ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h`` (the head's value through its slice of the output
  projection; x_j the attention module's input), plus the residual x_i;
- MLP block, ``out_i = mid_i + mlp(mid_i)``: the MLP's output and the residual.

In post-norm layers (BERT) the sums are taken before each block's LayerNorm, which scales every part
of a sum alike. A part's importance is its proximity to the whole (the paper's eq. 3),
``max(0, ||y||_1 - ||y - z||_1)``, normalised over the parts of the same node so they sum to 1.

Edges (`EDGE_TYPES`), each weighted by that share:

- ``attention``: token ``source``'s ``in`` -> token ``target``'s ``mid`` through every head: the
  sum over heads of the (source, head) parts; ``head`` names the head carrying most of it;
- ``head``: the same edge through one head, for heads whose own share is at least the threshold;
- ``residual``: ``in`` -> ``mid`` of the same token (the skip connection around attention);
- ``mlp`` and ``mlp_residual``: ``mid`` -> ``out`` of the same token, through the MLP and around it.

Pruning as in the paper: edges below `threshold` are dropped, and with a `token` only the routes into
that token's last ``out`` node are kept (walking down from it through kept edges). Without a token,
every kept edge of every node. Computed from one more pass of the model (`Trace.recording`), the
attention weights of the trace, and the projections; each layer's parts are checked to add up to
the recorded attention output (to 1e-3 of its scale; 16 epsilons of the model's dtype when it computes in
half precision).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.errors import OptionError, ReplayError
from ..core.replay import LayerRecord
from ..core.trace import Trace
from .values import kind_of, recorded_layers

EDGE_TYPES = ("attention", "head", "residual", "mlp", "mlp_residual")
#: Floats held at once while computing one layer's parts (targets x heads x keys x width).
CHUNK_VALUES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Edge:
    """One edge of the flow graph; `layer` is the block's layer (0-based, as in ``trace.attention()[layer]``)."""

    layer: int
    type: str
    head: int
    source: int
    target: int
    weight: float


def closeness(parts: Any, whole: Any) -> Any:
    """The paper's proximity ``max(0, |y|_1 - |y - z|_1)`` of parts (..., D) to wholes broadcast against them,
    summed term by term (``sum_d |y_d| - |y_d - z_d|``: no difference of two large sums, so float32 is exact
    enough for shares to 1e-5)."""
    return (whole.abs() - (whole - parts).abs()).sum(-1).clamp(min=0)


def proximity_shares(parts: Any, whole: Any) -> Any:
    """Each part's share of its whole: its `closeness`, normalised over the parts.

    `parts` (P, n, D) and `whole` (n, D), torch; returns (P, n) (0 where no part is close)."""
    import torch

    close = closeness(parts, whole[None])
    total = close.sum(0, keepdim=True)
    return torch.where(total > 0, close / total.clamp(min=1e-30), torch.zeros_like(close))


class LayerParts:
    """One layer's contributions: f_h(x_j) for every head and key, and the residual stream around it."""

    def __init__(self, record: LayerRecord, weights: np.ndarray, name: str, layer: int) -> None:
        import torch

        if record.residual is None or record.projection is None:
            raise ReplayError(f"No information flow for {name}: {record.missing or f'layer {layer} has no record'}.")
        self.record, self.layer, self.name = record, layer, name
        values = torch.from_numpy(np.repeat(record.values, record.groups, axis=0))        # (H, K, d)
        self.f = values @ torch.from_numpy(record.projection)                             # (H, K, D)
        self.weights = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32))  # (H, Q, K)
        self.bias = torch.zeros(self.f.shape[-1]) if record.bias is None else torch.from_numpy(record.bias)
        self.residual = record.residual

    def attention(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shares of each (head, source) and of the residual in the ``mid`` node of each target:
        float32 (targets, heads, keys) and (targets,). Keys no target attends to (masked) have share 0."""
        import torch

        heads, keys, width = self.f.shape
        step = max(1, CHUNK_VALUES // max(1, heads * keys * width))
        by_head, residual = [], []
        for start in range(0, len(targets), step):
            rows = np.asarray(targets[start:start + step], dtype=np.int64)
            a = self.weights[:, torch.from_numpy(rows)].permute(1, 0, 2)               # (c, H, K)
            used = torch.nonzero(a.abs().sum((0, 1)) > 0).flatten()                   # keys with any weight
            z = a[:, :, used, None] * self.f[None, :, used]                           # (c, H, k, D)
            whole = torch.from_numpy(self.residual.whole[rows])
            x = torch.from_numpy(self.residual.inputs[rows])
            self._check(z.sum((1, 2)) + self.bias, whole - x, rows)
            close_z = closeness(z, whole[:, None, None, :])                           # (c, H, k)
            close_x = closeness(x, whole)                                             # (c,)
            total = (close_z.sum((1, 2)) + close_x).clamp(min=1e-30)
            shares = torch.zeros(len(rows), heads, keys)
            shares[:, :, used] = close_z / total[:, None, None]
            by_head.append(shares.numpy())
            residual.append((close_x / total).numpy())
        return np.concatenate(by_head), np.concatenate(residual)

    def mlp(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shares of the MLP's output and of the residual in the ``out`` node of each target: (targets,) each."""
        import torch

        mid = torch.from_numpy(self.residual.mid[targets])
        post = torch.from_numpy(self.residual.post[targets])
        shares = proximity_shares(torch.stack([post - mid, mid]), post)
        return shares[0].numpy(), shares[1].numpy()

    def _check(self, parts_sum: Any, recorded: Any, rows: np.ndarray) -> None:
        import torch

        scale = float(recorded.abs().max()) if recorded.numel() else 0.0
        tol = max(1e-3, 16 * self.record.eps)  # a bfloat16 model's output is only that exact
        if not torch.allclose(parts_sum, recorded, rtol=tol, atol=tol * max(scale, 1e-6)):
            raise ReplayError(
                f"{self.name}'s layer {self.layer}: the heads' parts do not add up to the attention output it "
                f"computed (tokens {rows.tolist()[:4]}...), so tx_magic cannot decompose it."
            )


def _checked(trace: Trace, kind: str | None, token: Any, threshold: Any) -> tuple[str, int | None, float]:
    kind = kind_of(trace, kind)
    if trace.is_streamed(kind):
        raise ReplayError("The information flow needs every weight of each layer; this long input was captured "
                          "reduced. Capture fewer tokens (max_tokens=...) to see its flow.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise OptionError(f"threshold must be a number in 0..1 (a share of each node), got {threshold!r}")
    n = trace.shape(kind)[2]
    if token is None:
        return kind, None, float(threshold)
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not -n <= int(token) < n:
        raise OptionError(f"token must be a position in 0..{n - 1} (or None for every token), got {token!r}")
    return kind, int(token) % n, float(threshold)


def flow_edges(trace: Trace, kind: str | None = None, token: int | None = None,
               threshold: float = 0.04) -> list[Edge]:
    """The flow graph's edges (see the module docstring), top layer first."""
    kind, token, threshold = _checked(trace, kind, token, threshold)
    records = recorded_layers(trace, kind, flow=True)
    layers, _, n, _ = trace.shape(kind)
    reached = np.arange(n) if token is None else np.array([token])
    edges: list[Edge] = []
    for layer in range(layers - 1, -1, -1):
        if reached.size == 0:
            break
        parts = LayerParts(records[layer], trace.layer(kind, layer), trace.model_name, layer)
        mlp, skip = parts.mlp(reached)
        mid_tokens = []
        for t, m, s in zip(reached.tolist(), mlp.tolist(), skip.tolist(), strict=True):
            edges += [Edge(layer, kind_, -1, t, t, w) for kind_, w in (("mlp", m), ("mlp_residual", s))
                      if w >= threshold]
            if m >= threshold or s >= threshold or token is None:
                mid_tokens.append(t)
        targets = np.array(mid_tokens, dtype=np.int64)
        by_head, residual = parts.attention(targets) if targets.size else (np.zeros((0, 0, 0)), np.zeros(0))
        sources: set[int] = set()
        for row, target in enumerate(targets.tolist()):
            edges += _attention_edges(layer, target, by_head[row], float(residual[row]), threshold, sources)
        reached = np.arange(n) if token is None else np.array(sorted(sources), dtype=np.int64)
    return edges


def _attention_edges(layer: int, target: int, shares: np.ndarray, residual: float, threshold: float,
                     sources: set[int]) -> Iterable[Edge]:
    """The kept edges into one ``mid`` node, given its (heads, keys) shares; adds their sources to `sources`."""
    out = []
    if residual >= threshold:
        out.append(Edge(layer, "residual", -1, target, target, residual))
        sources.add(target)
    totals = shares.sum(0)
    for source in np.flatnonzero(totals >= threshold).tolist():
        column = shares[:, source]
        out.append(Edge(layer, "attention", int(column.argmax()), source, target, float(totals[source])))
        out += [Edge(layer, "head", h, source, target, float(column[h]))
                for h in np.flatnonzero(column >= threshold).tolist()]
        sources.add(source)
    return out


def flow_table(trace: Trace, kind: str | None = None, token: int | None = None, threshold: float = 0.04) -> Any:
    """`Trace.flow`: the edges as a pandas DataFrame when pandas is installed, else a list of dicts."""
    records = [asdict(edge) for edge in flow_edges(trace, kind, token, threshold)]
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame.from_records(records, columns=list(Edge.__dataclass_fields__))
