"""`Intervention`: what was done to a run besides feeding it (heads ablated, attention weights edited).

A `Trace` of an intervened run carries one (``trace.intervention``); reports and the widget show it.
Heads and edits are kept with their attention kind ("self", or "encoder" / "decoder" / "cross" of an
encoder-decoder), so one value names a head of any model unambiguously.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import OptionError

#: How an ablated head's output is replaced: by zeros, or by its mean over the positions of the input.
ABLATIONS = ("zero", "mean")
KINDS = ("self", "encoder", "decoder", "cross")

#: (kind, layer, head).
Head = tuple[str, int, int]
#: (kind, layer, head, query, key, weight).
Edit = tuple[str, int, int, int, int, float]


@dataclass(frozen=True)
class Intervention:
    """Heads whose output was replaced (``ablation``: "zero" or "mean") and attention weights that were set.

    An edit ``(kind, layer, head, query, key, weight)`` set that weight and rescaled the rest of its row
    so the row sums to 1 (weight 0 blocks the key); the run went on with the edited weights.
    """

    ablate: tuple[Head, ...] = ()
    ablation: str = "zero"
    edit: tuple[Edit, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether nothing was done."""
        return not self.ablate and not self.edit

    def label(self) -> str:
        """One line for people: ``ablated: L5H1, L5H5`` (with " (mean)" for mean ablation), edits after."""
        parts = []
        if self.ablate:
            how = "" if self.ablation == "zero" else f" ({self.ablation})"
            parts.append(f"ablated{how}: " + ", ".join(head_name(*h) for h in self.ablate))
        if self.edit:
            parts.append("edited: " + ", ".join(f"{head_name(k, layer, h)} {q}→{key} = {w:.3g}"
                                               for k, layer, h, q, key, w in self.edit))
        return " · ".join(parts) or "no intervention"

    def toggled(self, head: Head) -> Intervention:
        """This intervention with `head` ablated if it was not, restored if it was."""
        heads = tuple(h for h in self.ablate if h != head) if head in self.ablate else (*self.ablate, head)
        return Intervention(tuple(sorted(heads, key=_head_order)), self.ablation, self.edit)


def head_name(kind: str, layer: int, head: int) -> str:
    """``L5H1``; ``cross L5H1`` for a kind other than self-attention."""
    return f"L{layer}H{head}" if kind in ("self", "encoder") else f"{kind} L{layer}H{head}"


def _head_order(head: Head) -> tuple[int, int, int]:
    return KINDS.index(head[0]), head[1], head[2]


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise OptionError(f"{what} must be a whole number, got {value!r}")
    return int(value.__index__())


def _with_kind(item: Any, size: int, default_kind: str, what: str, example: str) -> tuple[str, list[Any]]:
    """(kind, the other fields) of a tuple of `size` fields, or `size` + 1 with the kind first."""
    if isinstance(item, str) or not isinstance(item, Sequence):
        raise OptionError(f"each {what} is a tuple {example}, got {item!r}")
    fields = list(item)
    if len(fields) == size + 1 and isinstance(fields[0], str):
        kind, fields = fields[0], fields[1:]
    elif len(fields) == size:
        kind = default_kind
    else:
        raise OptionError(f"each {what} is a tuple {example}, got {item!r}")
    if kind not in KINDS:
        raise OptionError(f"attention kind must be one of {list(KINDS)}, got {kind!r}")
    return kind, fields


def intervention_of(ablate: Iterable[Any] | None = None, ablation: str = "zero", edit: Iterable[Any] | None = None,
                    *, kind: str = "self") -> Intervention | None:
    """The `Intervention` that `capture(..., ablate=, ablation=, edit=)` asks for, or None for none.

    `ablate` holds ``(layer, head)`` pairs, `edit` ``(layer, head, query, key, weight)`` tuples; either may
    put the attention kind first (default `kind`: the model's first, "self" or "encoder").
    Only the form is checked here; whether the heads exist is the model's to say.
    """
    if ablation not in ABLATIONS:
        raise OptionError(f"ablation must be one of {list(ABLATIONS)}, got {ablation!r}")
    heads: list[Head] = []
    for item in ablate or ():
        k, (layer, head) = _with_kind(item, 2, kind, "head to ablate", "(layer, head)")
        entry = (k, _whole(layer, "a layer"), _whole(head, "a head"))
        if entry not in heads:
            heads.append(entry)
    edits: list[Edit] = []
    for item in edit or ():
        k, (layer, head, query, key, weight) = _with_kind(item, 5, kind, "edit", "(layer, head, query, key, weight)")
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise OptionError(f"an edit's weight must be a number in 0..1, got {weight!r}") from None
        if not (math.isfinite(w) and 0.0 <= w <= 1.0):
            raise OptionError(f"an edit's weight must be in 0..1 (0 blocks the key), got {weight!r}")
        edits.append((k, _whole(layer, "a layer"), _whole(head, "a head"), _whole(query, "a query"),
                      _whole(key, "a key"), w))
    if not heads and not edits:
        return None
    return Intervention(tuple(sorted(heads, key=_head_order)), ablation, tuple(edits))
