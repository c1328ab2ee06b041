"""`Trace`: one captured run of a model, the data model at the centre of tx_magic.

Capture produces it; analysis, the wire, the widget and reports consume it. Nothing else
travels between those parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import extensions
from .attention import AttentionStore, DenseAttention
from .checks import checked_attention, value_warnings
from .errors import ReplayError, ShapeError
from .generation import Generation
from .image import PatchImage
from .internals import Internals
from .intervention import Intervention
from .replay import Recording, Replay
from .tokens import Tokens

#: Attention kinds, and which token sequences their queries and keys come from.
KIND_SEQUENCES: Mapping[str, tuple[str, str]] = {
    "self": ("input", "input"),
    "encoder": ("source", "source"),
    "decoder": ("target", "target"),
    "cross": ("target", "source"),
}


@dataclass
class Trace:
    """Everything one forward pass showed: tokens, attention per kind, masks, internals.

    ``attention(kind)`` is a float32 array (layers, heads, queries, keys) holding the
    model's attention probabilities; ``tokens(kind)`` the (query, key) token sequences.
    """

    model_name: str
    sequences: dict[str, Tokens]
    #: Per kind, how its weights are kept (`tx_magic.core.attention`); arrays given here are checked
    #: and kept whole (`DenseAttention`).
    attentions: dict[str, Any]
    #: True where a query may attend to a key, per kind; absent means all allowed.
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Hidden states and the model's readout (causal LMs), None when not captured.
    internals: Internals | None = None
    #: Which tokens were generated, when the trace comes from generation.
    generation: Generation | None = None
    #: The picture a vision model saw (ViT-style: patches as tokens).
    image: PatchImage | None = None
    #: What was done to the run (heads ablated, weights edited), None for the model as it is.
    intervention: Intervention | None = None
    #: The model and batch, to run once more for the analyses that need more than the weights
    #: (`value_norms`, `queries_keys`, `flow`; see `tx_magic.core.replay`). None for arrays and hook captures.
    replay: Replay | None = field(default=None, repr=False, compare=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for kind, att in list(self.attentions.items()):
            if kind not in KIND_SEQUENCES:
                raise ShapeError(f"unknown attention kind {kind!r}; expected one of {list(KIND_SEQUENCES)}")
            proven = isinstance(att, DenseAttention) and att.softmax_rows
            if isinstance(att, DenseAttention):
                att = att.array
            elif isinstance(att, AttentionStore):  # reduced by tx_magic as the model ran: checked when made
                continue
            missing = [s for s in KIND_SEQUENCES[kind] if s not in self.sequences]
            if missing:
                raise ShapeError(f"attention {kind!r} needs the {missing[0]!r} tokens; the trace has "
                                 f"{list(self.sequences)}")
            q, k = (self.sequences[s] for s in KIND_SEQUENCES[kind])
            array = checked_attention(kind, att, q, k)
            self.attentions[kind] = DenseAttention(array, softmax_rows=proven and array is att)
            if not self.attentions[kind].softmax_rows:
                self.warnings.extend(w for w in value_warnings(kind, array) if w not in self.warnings)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Attention kinds present, in model order: ("self",) or ("encoder", "decoder", "cross")."""
        return tuple(k for k in KIND_SEQUENCES if k in self.attentions)

    def store(self, kind: str | None = None) -> AttentionStore:
        """How `kind`'s weights are kept: every weight, or reduced (a long input)."""
        store: AttentionStore = self.attentions[self._kind(kind)]
        return store

    def attention(self, kind: str | None = None) -> np.ndarray:
        """Attention probabilities of `kind` as float32 (layers, heads, queries, keys).

        For a long input captured streamed, this materialises every weight, which is refused
        above `tx_magic.core.attention.MATERIALIZE_LIMIT` bytes: use `layer` or `block` then.
        """
        return self.store(kind).materialize()

    def layer(self, kind: str | None, layer: int) -> np.ndarray:
        """Exact weights of one layer of `kind`, (heads, queries, keys) float32."""
        return self.store(kind).layer(layer)

    def block(self, kind: str | None, layer: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        """Exact weights of queries q0:q1 and keys k0:k1 in one layer, (heads, q, k) float32."""
        return self.store(kind).block(layer, q0, q1, k0, k1)

    def is_streamed(self, kind: str | None = None) -> bool:
        """Whether `kind` was captured streamed (a long input, kept reduced)."""
        return bool(self.store(kind).streamed)

    def tokens(self, kind: str | None = None) -> tuple[Tokens, Tokens]:
        """(query tokens, key tokens) of `kind`."""
        q, k = KIND_SEQUENCES[self._kind(kind)]
        return self.sequences[q], self.sequences[k]

    def mask(self, kind: str | None = None) -> np.ndarray:
        """Boolean (queries, keys): True where attending is allowed (causal and padding masks)."""
        kind = self._kind(kind)
        if kind in self.masks:
            return self.masks[kind]
        _, _, q, k = self.shape(kind)
        return np.ones((q, k), dtype=bool)

    def shape(self, kind: str | None = None) -> tuple[int, int, int, int]:
        """(layers, heads, queries, keys) of `kind`."""
        return self.store(kind).shape

    # -- analyses, computed by tx_magic.analysis (see tx_magic.core.extensions) -------------------

    def stats(self, kind: str | None = None) -> Any:
        """Per (layer, head): entropy, max weight, dispersion, distance, first/previous/self share, type.

        A pandas DataFrame when pandas is installed, else a list of dicts. Definitions and
        head-type thresholds: `tx_magic.analysis`.
        """
        return extensions.call("stats", self, kind)

    def rollout(self, kind: str | None = None, heads: Sequence[int] | None = None) -> np.ndarray:
        """Attention rollout (Abnar & Zuidema 2020) through each layer: float64 (layers, n, n)."""
        result: np.ndarray = extensions.call("rollout", self, kind, heads)
        return result

    @property
    def hidden(self) -> Any:
        """Per layer and token hidden-state norms and cosines (`tx_magic.analysis.hidden.HiddenStats`),
        or None when the model returned no hidden states."""
        return self._derive("hidden")

    @property
    def lens(self) -> Any:
        """Each layer's top tokens through the final norm and unembedding, computed when asked:
        ``trace.lens.top([positions])`` (`tx_magic.analysis.lens.LogitLens`); None but for causal LMs."""
        return self._derive("lens")

    @property
    def logits(self) -> Any:
        """Full-vocabulary next-token logits, ``trace.logits.at(i)``
        (`tx_magic.analysis.nexttoken.NextTokenLogits`); None but for causal LMs."""
        return self._derive("logits")

    @property
    def vocab(self) -> tuple[str, ...] | None:
        """Display string of every token id, for `lens` and `logits`."""
        return None if self.internals is None else self.internals.vocab

    # -- analyses that run the model once more (see tx_magic.core.replay) ---------------------------

    def value_norms(self, kind: str | None = None, *, per_key: bool = False) -> np.ndarray:
        """Value-weighted attention (Kobayashi et al. 2020): float32 (layers, heads, queries, keys) holding
        ``||a_ij f_h(x_j)||`` with ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h`` (the head's slice of the output
        projection, no output bias). `per_key`: only ``||f_h(x_j)||``, (layers, heads, keys).

        Computed the first time asked, by one more pass of the model (`tx_magic.analysis.values`).
        """
        result: np.ndarray = extensions.call("value_norms", self, kind, per_key)
        return result

    def queries_keys(self, kind: str | None, layer: int) -> Any:
        """(q, k) of one layer: float32 (heads, queries, d) and (heads, keys, d) as the model used them
        (after rotary embeddings; grouped KV heads expanded to their query heads), so that
        ``softmax(q @ k.T * qk.scale + mask)`` is ``attention(kind)[layer]``. Also ``.scale``, ``.groups``
        and, for rotary models, ``.unrotated`` (`tx_magic.analysis.values.QueriesKeys`)."""
        return extensions.call("queries_keys", self, kind, layer)

    def kv_groups(self, kind: str | None = None) -> np.ndarray:
        """int (heads,): the key/value head each query head reads (0..heads-1 without grouped KV)."""
        result: np.ndarray = extensions.call("kv_groups", self, kind)
        return result

    def flow(self, kind: str | None = None, token: int | None = None, threshold: float = 0.04) -> Any:
        """The information-flow graph (Ferrando & Voita 2024) of routes into `token` (every token: None):
        edges between (layer, token) nodes through attention heads and the residual / MLP path, each
        weighted by its share of the node's contribution and pruned below `threshold`. A DataFrame with
        pandas, else a list of dicts; definitions in `tx_magic.analysis.flow`."""
        return extensions.call("flow", self, kind, token, threshold)

    def recording(self, *, flow: bool = False) -> Recording:
        """What one instrumented pass of the model recorded (`tx_magic.core.replay.Recording`): run the
        first time an analysis asks, then cached. `flow` also records the residual stream.

        Raises `ReplayError` when the trace cannot be replayed or the model no longer computes its attention.
        """
        for key in ("recording+flow", "recording+flow" if flow else "recording"):
            if key in self._derived:
                cached: Recording = self._derived[key]
                return cached
        if self.replay is None:
            raise ReplayError(
                "This trace keeps no model to run again (it came from arrays, forward hooks or an image model): "
                "capture a transformers model with tx_magic.capture(model, tokenizer, text) for value norms, "
                "queries and keys, and the information flow."
            )
        record = self.replay.record({k: self.shape(k)[0] for k in self.kinds}, flow=flow)
        self._check_replay(record)
        self._derived["recording+flow" if flow else "recording"] = record
        return record

    def _check_replay(self, record: Recording) -> None:
        for kind in self.kinds:
            layers = record.layers.get(kind, [])
            _, heads, q, k = self.shape(kind)
            if len(layers) != self.shape(kind)[0]:
                raise ReplayError(f"Running {self.model_name} again gave {len(layers)} {kind} attention layers, the "
                                  f"trace has {self.shape(kind)[0]}: capture the text again.")
            for i, layer in enumerate(layers):
                expected = self.block(kind, i, q - 1, q, 0, k)[:, 0]
                if layer.last_row.shape != (heads, k) or not np.allclose(layer.last_row, expected, atol=1e-5):
                    raise ReplayError(
                        f"{self.model_name} no longer computes the attention this trace holds ({kind} layer {i} "
                        "differs): the model changed since the capture. Capture the text again."
                    )

    def _derive(self, name: str) -> Any:
        if self.internals is None:
            return None
        if name not in self._derived:
            self._derived[name] = extensions.call(name, self.internals)
        return self._derived[name]

    def _kind(self, kind: str | None) -> str:
        if kind is None:
            return self.kinds[0]
        if kind not in self.attentions:
            raise KeyError(f"this trace has no {kind!r} attention; it has {list(self.kinds)}")
        return kind

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k}: {a.shape[0]} layers x {a.shape[1]} heads x {a.shape[2]}x{a.shape[3]}"
            + (" (streamed)" if a.streamed else "")
            for k, a in self.attentions.items()
        )
        return f"Trace({self.model_name!r}, {parts})"
