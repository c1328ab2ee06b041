"""Beyond raw attention weights: value-weighted norms (Kobayashi et al. 2020, "Attention is Not Only a
Weight") and each layer's queries and keys as the model used them.

Value-weighted attention. Head h's output at query i is ``sum_j a_ij f_h(x_j)`` with
``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h``: the value vector through the head's slice of the output
projection (no output bias: it is the same for every key). A weight a_ij on a key whose f_h(x_j) is
tiny moves almost nothing, which is what most attention to [CLS], [SEP] and punctuation does, so
``||a_ij f_h(x_j)|| = a_ij ||f_h(x_j)||`` says what the head really takes from each key. The per-key
norms ``||f_h(x_j)||`` (layers, heads, keys) are small; the full (layers, heads, queries, keys) array
is the weights times them. Rows normalised to sum to 1 (``a_ij n_j / sum_k a_ik n_k``) compare with
the raw weights: that is what the widget's "value-weighted" switch shows.

Both come from one more pass of the model (`Trace.recording`; `tx_magic.core.replay`), run the first
time asked and cached; long inputs captured streamed keep their queries and keys already.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import OptionError, ReplayError
from ..core.replay import LayerRecord
from ..core.trace import Trace


class QueriesKeys(tuple):  # type: ignore[type-arg]  # (q, k) unpacks like a plain pair
    """``(q, k)`` of one layer, float32 (heads, queries, d) and (heads, keys, d), with what scores need:
    ``softmax(q @ k.transpose(0, 2, 1) * scale + mask)`` is the layer's attention."""

    scale: float
    #: Query heads per key/value head (grouped KV); keys are already expanded to every query head.
    groups: int
    #: (q, k) before the rotary embedding (rotary models only, else None), keys expanded likewise.
    unrotated: tuple[np.ndarray, np.ndarray] | None

    def __new__(cls, q: np.ndarray, k: np.ndarray, *, scale: float, groups: int,
                unrotated: tuple[np.ndarray, np.ndarray] | None = None) -> QueriesKeys:
        pair = super().__new__(cls, (q, k))
        pair.scale, pair.groups, pair.unrotated = float(scale), int(groups), unrotated
        return pair

    @property
    def q(self) -> np.ndarray:
        out: np.ndarray = self[0]
        return out

    @property
    def k(self) -> np.ndarray:
        out: np.ndarray = self[1]
        return out

    def scores(self, rotated: bool = True) -> np.ndarray:
        """q k^T * scale per head, float32 (heads, queries, keys), before any mask (`rotated`: False for the
        scores without the rotary embedding; rotary models only)."""
        if rotated:
            q, k = self.q, self.k
        elif self.unrotated is None:
            raise OptionError("this model has no rotary embedding: its scores have no unrotated form")
        else:
            q, k = self.unrotated
        out: np.ndarray = np.matmul(q, k.transpose(0, 2, 1)) * np.float32(self.scale)
        return out


def kind_of(trace: Trace, kind: str | None) -> str:
    """`kind`, or the trace's first kind; an unknown kind is an OptionError naming the ones there are."""
    if kind is None:
        return trace.kinds[0]
    if kind not in trace.kinds:
        raise OptionError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
    return kind


def layer_of(trace: Trace, kind: str, layer: Any) -> int:
    layers = trace.shape(kind)[0]
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < layers:
        raise OptionError(f"layer must be a whole number in 0..{layers - 1}, got {layer!r}")
    return int(layer)


def recorded_layers(trace: Trace, kind: str, *, flow: bool = False) -> list[LayerRecord]:
    """Every layer of `kind` from the trace's instrumented pass (run now if it has not run)."""
    return trace.recording(flow=flow).layers[kind]


def _streamed(trace: Trace, kind: str) -> Any:
    store = trace.store(kind)
    return store if store.streamed else None


def per_key_norms(trace: Trace, kind: str | None = None) -> np.ndarray:
    """||f_h(x_j)|| for every layer, head and key: float32 (layers, heads, keys)."""
    kind = kind_of(trace, kind)
    store = _streamed(trace, kind)
    if store is not None:
        raise ReplayError("Value norms need every weight of a layer, and this long input was captured reduced "
                          "(streamed). Capture fewer tokens (max_tokens=...; in the magic --max-tokens) to weigh "
                          "attention by value; trace.queries_keys() works at any length.")
    norms = []
    for i, layer in enumerate(recorded_layers(trace, kind)):
        if layer.value_norms is None:
            raise ReplayError(f"No value norms for {trace.model_name}: {layer.missing or f'layer {i} has none'}. "
                              "Raw attention weights are still there: trace.attention().")
        norms.append(layer.value_norms)
    return np.stack(norms).astype(np.float32, copy=False)


def value_norms(trace: Trace, kind: str | None = None, per_key: bool = False) -> np.ndarray:
    """`Trace.value_norms`: ||a_ij f_h(x_j)||, float32 (layers, heads, queries, keys); `per_key`: ||f_h(x_j)||."""
    kind = kind_of(trace, kind)
    norms = per_key_norms(trace, kind)
    if per_key:
        return norms
    weighted: np.ndarray = trace.attention(kind) * norms[:, :, None, :]
    return weighted.astype(np.float32, copy=False)


def weighted_rows(weights: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Value-weighted rows that sum to 1: ``a_ij n_j / sum_k a_ik n_k`` for weights (..., queries, keys) and
    norms (..., keys); a row whose weighted sum is 0 stays 0."""
    product = weights.astype(np.float64) * norms[..., None, :]
    total = product.sum(-1, keepdims=True)
    out: np.ndarray = np.divide(product, total, out=np.zeros_like(product), where=total > 0).astype(np.float32)
    return out


def queries_keys(trace: Trace, kind: str | None, layer: int) -> QueriesKeys:
    """`Trace.queries_keys`: one layer's queries and keys (keys expanded to every query head)."""
    kind = kind_of(trace, kind)
    layer = layer_of(trace, kind, layer)
    store = _streamed(trace, kind)
    if store is not None:
        q, k = store.queries[layer], store.keys[layer]
        groups = q.shape[0] // k.shape[0]
        return QueriesKeys(q, np.repeat(k, groups, axis=0), scale=float(store.scaling[layer]), groups=groups)
    record = recorded_layers(trace, kind)[layer]
    groups = record.groups
    unrotated = None
    if record.unrotated is not None:
        uq, uk = record.unrotated
        unrotated = (uq, np.repeat(uk, groups, axis=0))
    return QueriesKeys(record.queries, np.repeat(record.keys, groups, axis=0), scale=record.scaling, groups=groups,
                       unrotated=unrotated)


def kv_groups(trace: Trace, kind: str | None = None) -> np.ndarray:
    """`Trace.kv_groups`: int64 (heads,), the key/value head each query head reads."""
    kind = kind_of(trace, kind)
    store = _streamed(trace, kind)
    if store is not None:
        groups = {store.queries.shape[1] // store.keys.shape[1]}
    else:
        groups = {layer.groups for layer in recorded_layers(trace, kind)}
    if len(groups) != 1:
        raise ReplayError(f"{trace.model_name}'s layers group their key/value heads differently ({sorted(groups)}): "
                          "read each layer's trace.queries_keys(kind, layer).groups")
    heads = trace.shape(kind)[1]
    out: np.ndarray = np.arange(heads) // groups.pop()
    return out
