"""The ``_internals`` trait of the wire schema: hidden states, the logit lens, next-token logits, generation.

Part of `tx_magic.wire.schema` (which re-exports every name), in a module of its own to keep each short.
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from evaluated annotations.

import sys

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import TypedDict


class Hidden(TypedDict):
    layers: int
    tokens: int
    norms: bytes
    cosines: bytes
    #: The last row is after the model's final norm.
    last_normed: bool


class LensInfo(TypedDict):
    layers: int
    tokens: int
    k: int


class LogitsHeader(TypedDict):
    """Logits without their bytes: a REQUEST_LOGITS reply's content."""

    position: int


class Logits(LogitsHeader):
    data: bytes


class Generation(TypedDict):
    prompt: int
    steps: int
    sample: bool


class Internals(TypedDict, total=False):
    """The ``_internals`` trait: each part only when captured."""

    hidden: Hidden
    lens: LensInfo
    logits: Logits
    vocab: list[str]
    generation: Generation
