"""`Trace`: one captured run of a model, the data model at the centre of tx_magic.

Capture produces it; the widget, reports and statistics consume it. Nothing else
travels between those parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence, Union

import numpy as np

from .checks import checked_attention, value_warnings
from .errors import ShapeError

if TYPE_CHECKING:
    from .analysis.hidden import HiddenStats
    from .analysis.lens import LogitLens
    from .analysis.nexttoken import NextTokenLogits
    from .generate import Generation
    from .images import PatchImage
    from .streamed import ReducedAttention

#: Largest attention `Trace.attention` materialises from a streamed capture.
MATERIALIZE_LIMIT = 1024 ** 3

#: Attention kinds, and which token sequences their queries and keys come from.
KIND_SEQUENCES: Mapping[str, tuple[str, str]] = {
    "self": ("input", "input"),
    "encoder": ("source", "source"),
    "decoder": ("target", "target"),
    "cross": ("target", "source"),
}


@dataclass(frozen=True)
class Tokens(Sequence[str]):
    """A token sequence: display strings plus what they came from.

    Behaves as a sequence of display strings (``list(tokens)``); ``ids``, ``raw``
    (the tokenizer's own strings), ``special`` (True for [CLS], <s>, ...) and ``segment``
    (0 for text A, 1 for text B of a sentence pair) run alongside.
    """

    text: tuple[str, ...]
    ids: tuple[int, ...] = ()
    raw: tuple[str, ...] = ()
    special: tuple[bool, ...] = ()
    segment: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.text)
        object.__setattr__(self, "text", tuple(str(t) for t in self.text))
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids) or (-1,) * n)
        object.__setattr__(self, "raw", tuple(self.raw) or self.text)
        object.__setattr__(self, "special", tuple(bool(s) for s in self.special) or (False,) * n)
        object.__setattr__(self, "segment", tuple(int(s) for s in self.segment) or (0,) * n)
        if not (len(self.ids) == len(self.raw) == len(self.special) == len(self.segment) == n):
            raise ShapeError("Tokens: text, ids, raw, special and segment must have the same length")

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, i):  # type: ignore[override]
        return self.text[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.text)


@dataclass
class Trace:
    """Everything one forward pass showed: tokens, attention per kind, masks.

    ``attention(kind)`` is a float32 array (layers, heads, queries, keys) holding the
    model's attention probabilities; ``tokens(kind)`` the (query, key) token sequences.
    """

    model_name: str
    sequences: dict[str, Tokens]
    #: Per kind, the full float32 array, or a `ReducedAttention` for long inputs.
    attentions: dict[str, Union[np.ndarray, "ReducedAttention"]]
    #: True where a query may attend to a key, per kind; absent means all allowed.
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Model internals (causal LMs, self-attention models), None when not captured:
    #: per layer and token hidden-state norms and cosines (`tx_magic.analysis.hidden.HiddenStats`);
    hidden: "HiddenStats | None" = None
    #: each layer's top tokens through the final norm and unembedding, computed when asked:
    #: ``trace.lens.top([positions])`` (`analysis.lens.LogitLens`; keeps the hidden states, float32);
    lens: "LogitLens | None" = None
    #: full-vocabulary next-token logits, last position eager (`analysis.nexttoken.NextTokenLogits`);
    logits: "NextTokenLogits | None" = None
    #: display string of every token id, for `lens` and `logits`;
    vocab: "tuple[str, ...] | None" = None
    #: which tokens were generated, when the trace comes from generation (`tx_magic.generate.Generation`).
    generation: "Generation | None" = None
    #: the picture a vision model saw (ViT-style: patches as tokens), `tx_magic.images.PatchImage`.
    image: "PatchImage | None" = None

    def __post_init__(self) -> None:
        for kind, att in self.attentions.items():
            if kind not in KIND_SEQUENCES:
                raise ShapeError(f"unknown attention kind {kind!r}; expected one of {list(KIND_SEQUENCES)}")
            if not isinstance(att, np.ndarray) and hasattr(att, "block"):  # streamed: checked when made
                continue
            missing = [s for s in KIND_SEQUENCES[kind] if s not in self.sequences]
            if missing:
                raise ShapeError(f"attention {kind!r} needs the {missing[0]!r} tokens; the trace has "
                                 f"{list(self.sequences)}")
            q, k = (self.sequences[s] for s in KIND_SEQUENCES[kind])
            self.attentions[kind] = checked_attention(kind, att, q, k)
        self.warnings.extend(value_warnings(self.attentions, already=self.warnings))

    @property
    def kinds(self) -> tuple[str, ...]:
        """Attention kinds present, in model order: ("self",) or ("encoder", "decoder", "cross")."""
        return tuple(k for k in KIND_SEQUENCES if k in self.attentions)

    def attention(self, kind: str | None = None) -> np.ndarray:
        """Attention probabilities of `kind` as float32 (layers, heads, queries, keys).

        For a long input captured streamed, this materialises every weight, which is refused
        above MATERIALIZE_LIMIT bytes: use `layer` or `block` then.
        """
        kind = self._kind(kind)
        att = self.attentions[kind]
        if isinstance(att, np.ndarray):
            return att
        layers, heads, q, k = att.shape
        size = layers * heads * q * k * 4
        if size > MATERIALIZE_LIMIT:
            from .memory import MemoryBudgetError

            raise MemoryBudgetError(
                f"All {kind} weights of this {q}-token trace would take {size / 1024 ** 3:.1f} GB; it keeps them "
                "reduced. Read exact values with trace.layer(kind, layer) or trace.block(kind, layer, q0, q1, k0, k1)."
            )
        return np.stack([att.layer(i) for i in range(layers)])

    def layer(self, kind: str | None, layer: int) -> np.ndarray:
        """Exact weights of one layer of `kind`, (heads, queries, keys) float32."""
        att = self.attentions[self._kind(kind)]
        return att[layer] if isinstance(att, np.ndarray) else att.layer(layer)

    def block(self, kind: str | None, layer: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        """Exact weights of queries q0:q1 and keys k0:k1 in one layer, (heads, q, k) float32."""
        att = self.attentions[self._kind(kind)]
        if isinstance(att, np.ndarray):
            return att[layer, :, q0:q1, k0:k1]
        return att.block(layer, q0, q1, k0, k1)

    def is_streamed(self, kind: str | None = None) -> bool:
        """Whether `kind` was captured streamed (a long input, kept reduced)."""
        return not isinstance(self.attentions[self._kind(kind)], np.ndarray)

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
        return tuple(self.attentions[self._kind(kind)].shape)  # type: ignore[return-value]

    def stats(self, kind: str | None = None):  # noqa: ANN201 - DataFrame or list of dicts
        """Per (layer, head): entropy, max weight, dispersion, distance, first/previous/self share, type.

        A pandas DataFrame when pandas is installed, else a list of dicts. Definitions and
        head-type thresholds: `tx_magic.analysis`.
        """
        from .analysis import stats_table

        return stats_table(self, kind)

    def rollout(self, kind: str | None = None, heads: Sequence[int] | None = None) -> np.ndarray:
        """Attention rollout (Abnar & Zuidema 2020) through each layer: float64 (layers, n, n)."""
        from .analysis import rollout

        return rollout(self, kind, heads)

    def _kind(self, kind: str | None) -> str:
        if kind is None:
            return self.kinds[0]
        if kind not in self.attentions:
            raise KeyError(f"this trace has no {kind!r} attention; it has {list(self.kinds)}")
        return kind

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k}: {a.shape[0]} layers x {a.shape[1]} heads x {a.shape[2]}x{a.shape[3]}"
            + (" (streamed)" if not isinstance(a, np.ndarray) else "")
            for k, a in self.attentions.items()
        )
        return f"Trace({self.model_name!r}, {parts})"
