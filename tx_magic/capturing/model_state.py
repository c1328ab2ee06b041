"""Run a user's model in the state a capture needs, and always put it back as it was.

Every way tx_magic runs a model goes through these: eval mode, the attention implementation
it asks for, hooks it adds, torch's fused-MHA fast path, parameters' requires_grad flags (attribution
patching), layers skipped by a known result (exact patching). Each restores what it changed when the
block ends, whether it ended normally, by an error or by Ctrl-C (KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

#: No instance attribute was there.
_MISSING = object()


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


@contextlib.contextmanager
def frozen_parameters(model: Any) -> Iterator[None]:
    """No parameter of `model` requires grad in the block (autograd then follows activations only);
    every parameter's flag is put back after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def replaced_forwards(replacements: Mapping[Any, Callable[..., Any]]) -> Iterator[None]:
    """Each module's forward is the function given for the block (a layer whose result is known is skipped);
    the modules' own forwards are back after, an instance attribute of the user's included."""
    saved = [(module, module.__dict__.get("forward", _MISSING)) for module in replacements]
    try:
        for module, function in replacements.items():
            module.forward = function
        yield
    finally:
        for module, before in saved:
            if before is _MISSING:
                module.__dict__.pop("forward", None)
            else:
                module.forward = before
