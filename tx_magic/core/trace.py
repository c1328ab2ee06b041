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
from .errors import ShapeError
from .generation import Generation
from .image import PatchImage
from .internals import Internals
from .intervention import Intervention
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
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for kind, att in list(self.attentions.items()):
            if kind not in KIND_SEQUENCES:
                raise ShapeError(f"unknown attention kind {kind!r}; expected one of {list(KIND_SEQUENCES)}")
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
            self.attentions[kind] = DenseAttention(array)
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
