"""Run a user's model in the state a capture needs, and always put it back as it was.

Every way tx_magic runs a model goes through these: eval mode, the attention implementation
it asks for, hooks it adds, torch's fused-MHA fast path. Each restores what it changed when the
block ends, whether it ended normally, by an error or by Ctrl-C (KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """Eval mode for the block; the model's train/eval mode is put back after."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """A transformers model computes attention with `name` in the block (a no-op for other modules)."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = before not in (None, name) and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation(name)
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """The model's own eager attention (which returns its weights) and eval mode, for one pass."""
    with attention_implementation(model, "eager"), evaluating(model):
        yield


@contextlib.contextmanager
def hook_handles() -> Iterator[list[Any]]:
    """A list to put hook handles in as they are registered; every one is removed when the block
    ends (also those of a registration loop that failed half-way)."""
    handles: list[Any] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def without_mha_fast_path() -> Iterator[None]:
    """torch.nn.MultiheadAttention through its Python forward (the fused kernel skips hooks)."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)
