"""sentence-transformers: `explain(SentenceTransformer(...), text=...)` and `CrossEncoder` (texts as a pair).

Both are a `torch.nn.Sequential` of modules whose first `Transformer` holds the transformers model
(``auto_model``) and its tokenizer; tx_magic runs that model, with the library's own input limit
(``max_seq_length``) unless max_tokens says otherwise.
"""

from __future__ import annotations

import pathlib
from typing import Any

from ...core.errors import ModelLoadError
from ..load import DEFAULT_MODEL_NAME, default_model_path
from ..models import is_transformers_model, model_name
from .base import Unwrapped, instance_of

MODULE = "sentence_transformers"


def is_sentence_model(obj: Any) -> bool:
    """A SentenceTransformer, CrossEncoder or SparseEncoder."""
    return instance_of(obj, MODULE, "SentenceTransformer", "CrossEncoder", "SparseEncoder")


def transformer_module(obj: Any) -> Any:
    """The transformers model inside: the first submodule's ``auto_model`` (or ``model``) that is one."""
    for module in obj.modules():
        for attribute in ("auto_model", "model"):
            inner = getattr(module, attribute, None)
            if inner is not None and is_transformers_model(inner):
                return inner
    return None


def unwrap(obj: Any) -> Unwrapped | None:
    """The transformers model and tokenizer of a sentence-transformers model, else None."""
    if not is_sentence_model(obj):
        return None
    inner = transformer_module(obj)
    if inner is None:
        return None
    limit = getattr(obj, "max_seq_length", None)
    return Unwrapped(inner, getattr(obj, "tokenizer", None), display_name(inner),
                     max_tokens=int(limit) if isinstance(limit, int) and limit > 0 else None,
                     source=f"sentence-transformers {type(obj).__name__}")


def display_name(inner: Any) -> str:
    """The model's name; tx_magic's default model (loaded from its package folder, named "model") by its own."""
    path = getattr(getattr(inner, "config", None), "_name_or_path", "") or ""
    try:
        if path and pathlib.Path(path).resolve() == default_model_path().resolve():
            return DEFAULT_MODEL_NAME
    except (ModelLoadError, OSError):
        pass
    return model_name(inner)
