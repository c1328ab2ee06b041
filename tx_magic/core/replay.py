"""What a capture keeps to run the model once more, and what that second pass records, as plain data.

Some analyses need more of the model than its attention weights: the value-weighted norms of
Kobayashi et al. (2020) need each head's value vectors and output projection, the query/key view
needs queries and keys as the model used them, the information flow of Ferrando & Voita (2024)
needs the residual stream around every attention and MLP block. A capture from a transformers model
keeps a `Replay` on its trace (``Trace.replay``: the model and the exact batch it ran); the first
analysis that needs it runs one instrumented pass (`tx_magic.capturing.recording`), which gives a
`Recording`, and the trace caches it.

The replay holds the model strongly, as the logit lens holds its final norm and unembedding: a trace
keeps its model alive, so the analyses work for as long as the trace does. Each pass checks that the
model still computes the attention the trace holds, and refuses (`ReplayError`) when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: How a layer adds its attention and MLP outputs to the residual stream (`Residual.layout`).
PRE_NORM = "pre-norm"    # x + attn(norm(x)), then + mlp(norm(.)): GPT-2, Llama, Mistral, Qwen...
POST_NORM = "post-norm"  # norm1(x + attn(x)), then norm2(. + mlp(.)): BERT, RoBERTa, BART...


@dataclass(frozen=True)
class Residual:
    """The residual stream around one layer's attention and MLP blocks, float32 (queries, width).

    Attention block: ``whole = inputs + sum_h sum_j a^h_ij f_h(x_j) + bias`` (``bias`` is the output
    projection's). MLP block: ``post = mid + mlp``. In a pre-norm layer ``mid`` is ``whole``; in a
    post-norm layer ``mid = norm1(whole)``, and ``post`` is the second norm's input (the layer's output
    is ``norm2(post)``): contributions are measured before each norm, which scales all parts alike.
    """

    layout: str
    #: The layer's input x: the residual the attention output is added to.
    inputs: np.ndarray
    #: The attention block's sum (before the norm in a post-norm layer).
    whole: np.ndarray
    #: What the MLP block adds to.
    mid: np.ndarray
    #: The MLP block's sum (before the norm in a post-norm layer).
    post: np.ndarray

    @property
    def attention(self) -> np.ndarray:
        """The output projection's output: every head's contribution plus its bias."""
        out: np.ndarray = self.whole - self.inputs
        return out

    @property
    def mlp(self) -> np.ndarray:
        """The MLP's output."""
        out: np.ndarray = self.post - self.mid
        return out


@dataclass(frozen=True)
class LayerRecord:
    """One attention layer of one kind as the instrumented pass saw it (the batch's only sequence)."""

    #: float32 (heads, queries, d): as the model used them (after rotary embeddings).
    queries: np.ndarray
    #: float32 (kv_heads, keys, d): the module's own key/value heads (grouped KV: not repeated).
    keys: np.ndarray
    values: np.ndarray
    #: The factor scores are multiplied by before the softmax.
    scaling: float
    #: float32 (heads, keys): the weights of the last query row, to check the pass against the trace.
    last_row: np.ndarray
    #: float32 (heads, keys): ||f_h(x_j)|| = ||v_j W_O^h||, or None when the projection was not found.
    value_norms: np.ndarray | None = None
    #: float32 (heads, d, width): each head's slice W_O^h of the output projection (flow passes only).
    projection: np.ndarray | None = None
    #: float32 (width,): the output projection's bias, None when it has none (flow passes only).
    bias: np.ndarray | None = None
    #: Queries and keys before the rotation, for rotary models (None otherwise).
    unrotated: tuple[np.ndarray, np.ndarray] | None = None
    #: The residual stream around the layer (flow passes only; None when it could not be followed).
    residual: Residual | None = None
    #: Why `value_norms` / `residual` are missing, in words a person can act on ("" when nothing is).
    missing: str = ""
    #: Machine epsilon of the dtype the model computed in (float32's, or bfloat16's...): how exactly the
    #: recorded parts can add up.
    eps: float = float(np.finfo(np.float32).eps)

    @property
    def heads(self) -> int:
        return int(self.queries.shape[0])

    @property
    def groups(self) -> int:
        """Query heads per key/value head (1 without grouped KV)."""
        return max(1, self.heads // int(self.keys.shape[0]))


@dataclass
class Recording:
    """What one instrumented pass recorded, per attention kind and layer."""

    layers: dict[str, list[LayerRecord]] = field(default_factory=dict)
    #: Whether the residual stream was recorded too (an information-flow pass).
    flow: bool = False


class Replay(Protocol):
    """The model and batch of a capture, able to run them once more under instruments."""

    @property
    def description(self) -> str:
        """What runs (the model's class), for messages."""

    def record(self, kinds: Mapping[str, int], *, flow: bool) -> Recording:
        """One pass; `kinds`: the layers of each attention kind, in the model's call order. `flow` also
        records the residual stream and the output projections. Raises `ReplayError` when it cannot."""
