"""What an adapter gives back: a model ready for the existing capture paths, or attention arrays
with their tokens for `show`. Adapters never import their library: an object can only be one of
its classes once the user has imported it, so `imported` looks in `sys.modules`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Runs a model that tx_magic does not capture itself on a text: (text, max_tokens, name) -> Trace.
Runner = Callable[[str, "int | None", "str | None"], Any]


@dataclass(frozen=True)
class Unwrapped:
    """A model object of another library, unwrapped: the transformers (or torch) model inside it and its tokenizer.

    `max_tokens` is the library's own input limit (sentence-transformers' ``max_seq_length``), used
    when the caller gives none; `runner`, when set, captures instead of tx_magic's own paths (a
    model with no transformers model inside, run through its library's cache).
    """

    model: Any
    tokenizer: Any
    name: str | None = None
    max_tokens: int | None = None
    runner: Runner | None = None
    #: The library and class it came from, for messages ("sentence-transformers SentenceTransformer").
    source: str = ""


@dataclass
class Arrays:
    """Attention another library computed, as `trace_from_arrays` takes it: one array (or list per
    layer) for self-attention or a dict per kind, the tokens, a display name and what to warn about."""

    attentions: Any
    tokens: Any
    name: str
    warnings: list[str] = field(default_factory=list)


def imported(module: str) -> Any:
    """The module if the user's process has imported it (so objects of it can exist), else None."""
    return sys.modules.get(module)


def instance_of(obj: Any, module: str, *names: str) -> bool:
    """Whether `obj` is an instance of `module.<name>` for one of `names`, without importing `module`."""
    mod = imported(module)
    if mod is None:
        return False
    for name in names:
        cls = _attribute(mod, name)
        if isinstance(cls, type) and isinstance(obj, cls):
            return True
    return False


def _attribute(mod: Any, dotted: str) -> Any:
    value = mod
    for part in dotted.split("."):
        try:
            value = getattr(value, part)
        except (AttributeError, ImportError):  # transformer_lens 4 raises ImportError for removed names
            return None
    return value
