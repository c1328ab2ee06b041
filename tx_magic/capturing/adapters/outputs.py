"""A transformers `ModelOutput` given to `show`: its ``attentions`` (self-attention), or its
``encoder_attentions`` / ``decoder_attentions`` / ``cross_attentions`` (encoder-decoders)."""

from __future__ import annotations

from typing import Any

from ...core.errors import TxMagicError
from .base import Arrays, instance_of

#: Output fields per attention kind, in model order.
FIELDS = {"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"}


class OutputsError(TxMagicError, ValueError):
    """Model outputs that hold no attention, or a batch of several texts."""


def is_model_output(obj: Any) -> bool:
    """Whether `obj` is a transformers ModelOutput."""
    return instance_of(obj, "transformers.utils", "ModelOutput")


def output_arrays(obj: Any, tokens: Any, name: str) -> Arrays:
    """The attention in model outputs, per kind, checked to be one text."""
    kinds = {kind: _layers(obj, field) for kind, field in FIELDS.items()}
    kinds = {k: v for k, v in kinds.items() if v}
    if not kinds:
        self_attention = _layers(obj, "attentions")
        if not self_attention:
            raise OutputsError(
                f"These {type(obj).__name__} outputs hold no attention: call the model with output_attentions=True "
                "(and attn_implementation='eager': sdpa returns no weights).")
        return Arrays(self_attention, tokens, name)
    return Arrays(kinds, tokens, name)


def _layers(obj: Any, field: str) -> list[Any]:
    layers = [a for a in (getattr(obj, field, None) or ()) if a is not None]
    for layer in layers:
        shape = tuple(getattr(layer, "shape", ()))
        if len(shape) == 4 and shape[0] != 1:
            raise OutputsError(
                f"The outputs hold a batch of {shape[0]} texts ({field}[0] is {shape}): show one, e.g. "
                f"show([a[i:i + 1] for a in outputs.{field}], tokens).")
    return layers
