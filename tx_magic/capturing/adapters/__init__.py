"""Objects of the libraries around transformers, unwrapped into what tx_magic's capture paths take.

`unwrap_model(model, tokenizer)` turns a TransformerLens `TransformerBridge` (or v3 `HookedTransformer`),
an nnsight `LanguageModel`, a sentence-transformers `SentenceTransformer` / `CrossEncoder` or a
transformers `Pipeline` into the transformers model inside it and its tokenizer (the given tokenizer wins);
anything else comes back as given. `attention_arrays(obj, tokens)` turns a TransformerLens
`ActivationCache` or a transformers `ModelOutput` into attention arrays and tokens for `show`.

One module per library; none imports its library (see `base.imported`), so tx_magic needs none of them.
"""

from __future__ import annotations

from typing import Any

from ...core.trace import Trace
from ..arrays import trace_from_arrays
from . import nnsight, outputs, pipelines, sentence_transformers, transformer_lens
from .base import Arrays, Unwrapped

__all__ = ["Arrays", "Unwrapped", "attention_arrays", "trace_of", "unwrap_model"]

#: Model adapters, tried in order; each returns None for objects not of its library.
_MODEL_ADAPTERS = (transformer_lens.unwrap, nnsight.unwrap, sentence_transformers.unwrap, pipelines.unwrap)


def unwrap_model(model: Any, tokenizer: Any = None) -> Unwrapped:
    """`model` unwrapped (see the module docstring): the given `tokenizer` when there is one, else the library's."""
    if isinstance(model, Unwrapped):
        return model
    for adapter in _MODEL_ADAPTERS:
        found = adapter(model)
        if found is not None:
            if tokenizer is None:
                return found
            return Unwrapped(found.model, tokenizer, found.name, found.max_tokens, found.runner, found.source)
    return Unwrapped(model, tokenizer)


def attention_arrays(obj: Any, tokens: Any = None, name: str = "attention arrays") -> Arrays | None:
    """Attention arrays and tokens from a TransformerLens cache or transformers model outputs; None for
    anything else (arrays of any framework, left to `trace_from_arrays`)."""
    if transformer_lens.is_cache(obj):
        return transformer_lens.cache_arrays(obj, tokens)
    if outputs.is_model_output(obj):
        return outputs.output_arrays(obj, tokens, name)
    return None


def trace_of(obj: Any, tokens: Any = None, *, name: str = "attention arrays") -> Trace:
    """A `Trace` from a TransformerLens cache, model outputs, or attention arrays of any framework (what
    `tx_magic.show` takes), with what the conversion noticed in ``trace.warnings``."""
    arrays = attention_arrays(obj, tokens, name)
    if arrays is None:
        return trace_from_arrays(obj, tokens, name=name)
    trace = trace_from_arrays(arrays.attentions, arrays.tokens, name=arrays.name)
    trace.warnings.extend(w for w in arrays.warnings if w not in trace.warnings)
    return trace
