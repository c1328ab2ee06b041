"""tx_magic's own attention functions, registered with transformers by name (``AttentionInterface``),
and the block in which a model computes its attention with one of them.

Two exist: the streamed recorder (`streamed.py`, sdpa plus reductions for long inputs) and the
instrumented eager attention (`instrument.py`). Each reads what it needs from a context variable
that `switched_to` sets for the block only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .model_state import attention_implementation, evaluating

T = TypeVar("T")


def register(name: str, function: Callable[..., Any], mask: str) -> None:
    """Make `function` transformers' attention implementation `name`, with `mask` ("sdpa" or "eager")
    style attention masks. Idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, eager_mask, sdpa_mask

    if name not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, sdpa_mask if mask == "sdpa" else eager_mask)


@contextlib.contextmanager
def switched_to(model: Any, name: str, active: contextvars.ContextVar[T | None], value: T) -> Iterator[T]:
    """`model` in eval mode computes attention with the registered function `name`, which sees `value`
    through `active`, for the block; the model's mode and attention implementation are put back after."""
    with attention_implementation(model, name), evaluating(model):
        token = active.set(value)
        try:
            yield value
        finally:
            active.reset(token)
