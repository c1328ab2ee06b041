"""Run a transformers model with every attention layer open to observers and interventions.

transformers 5 models compute attention through a function they look up by name
(``AttentionInterface``). For one pass, `instrumented` switches the model to tx_magic's function,
which calls the model's *own* eager attention (``eager_attention_forward`` of the model's module:
the same numbers as ``attn_implementation="eager"``, bit for bit) and hands each layer's pieces to
the `Instrument`s given:

- ``on_inputs(call, query, key, value)``: query (B, H, q, d) and key, value (B, Hkv, k, d) as the
  model uses them (after rotary embeddings; key/value heads not yet repeated for grouped KV);
- ``on_weights(call, weights)``: the attention probabilities (B, H, q, k); returning a tensor
  replaces them, and the layer's output is recomputed from the new weights (``weights @ value``);
- ``on_output(call, output)``: each head's output before the output projection (B, q, H, d), the
  head's slice of the projection's input; returning a tensor replaces it.

Instruments see the pass as it runs, with autograd when the caller wants gradients. The model is
put back afterwards (attention implementation, train/eval mode), also after an error or Ctrl-C.
Models whose attention does not go through the interface are never called: `Run.calls` stays 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attention_functions import register, switched_to

IMPLEMENTATION = "tx_magic_instrumented"
#: Keyword arguments of attention terms tx_magic's fallback eager attention does not compute.
UNSUPPORTED = ("softcap", "s_aux", "sinks", "position_bias", "sliding_window")


@dataclass(frozen=True)
class AttentionCall:
    """One call of one attention module during an instrumented pass."""

    module: Any
    #: Attention modules in the order of their first call: the layer index of a self-attention stack
    #: (an encoder-decoder's encoder layers, then its decoder's self and cross layers alternating).
    layer: int
    #: How often this module was called before in this run (generation steps call each layer again).
    step: int
    #: Query heads per key/value head (grouped KV), 1 otherwise.
    groups: int
    scaling: float | None


class Instrument:
    """Base of what watches or changes an instrumented pass; every method is optional."""

    def on_inputs(self, call: AttentionCall, query: Any, key: Any, value: Any) -> None:
        """Query (B, H, q, d), key and value (B, Hkv, k, d) of one call."""

    def on_weights(self, call: AttentionCall, weights: Any) -> Any:  # noqa: ARG002 - the default keeps them
        """The probabilities (B, H, q, k); return replacements, or None to keep them."""
        return None

    def on_output(self, call: AttentionCall, output: Any) -> Any:  # noqa: ARG002 - the default keeps it
        """Each head's output (B, q, H, d) before the output projection; return a replacement or None."""
        return None


@dataclass
class Run:
    """The instruments of one instrumented block and what it saw."""

    instruments: Sequence[Instrument]
    calls: int = 0
    _layers: dict[int, int] = field(default_factory=dict)
    _steps: dict[int, int] = field(default_factory=dict)

    def call(self, module: Any, query: Any, key: Any, scaling: float | None) -> AttentionCall:
        key_id = id(module)
        layer = self._layers.setdefault(key_id, len(self._layers))
        step = self._steps.get(key_id, 0)
        self._steps[key_id] = step + 1
        self.calls += 1
        return AttentionCall(module, layer, step, max(1, query.shape[1] // key.shape[1]), scaling)


_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar("tx_magic_instrumented_run", default=None)


def repeat_kv(states: Any, groups: int) -> Any:
    """(B, Hkv, n, d) key/value states repeated to (B, Hkv * groups, n, d), each KV head for its query heads."""
    return states if groups == 1 else states.repeat_interleave(groups, dim=1)


def standard_eager(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                   scaling: float | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """softmax(q k^T * scaling + mask) @ v, for models whose module defines no eager attention of its own."""
    import torch

    for name in UNSUPPORTED:
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"attention with {name}")
    groups = max(1, query.shape[1] // key.shape[1])
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, repeat_kv(key, groups).transpose(2, 3)) * scale
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    weights = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=bool(getattr(module, "training", False)))
    return torch.matmul(weights, repeat_kv(value, groups)).transpose(1, 2).contiguous(), weights


def model_eager(module: Any) -> Callable[..., tuple[Any, Any]]:
    """The eager attention function of the module's own model code, else `standard_eager`."""
    own = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    return own if callable(own) else standard_eager


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
               scaling: float | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """tx_magic's registered attention function: the model's eager attention, with the active run's instruments."""
    import torch

    run = _RUN.get()
    eager = model_eager(module)
    if run is None:  # called outside `instrumented` (e.g. a model left switched by someone else)
        return eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    call = run.call(module, query, key, scaling)
    for instrument in run.instruments:
        instrument.on_inputs(call, query, key, value)
    output, weights = eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    changed = False
    for instrument in run.instruments:
        new = instrument.on_weights(call, weights)
        if new is not None:
            weights, changed = new, True
    if changed:
        output = torch.matmul(weights.to(value.dtype), repeat_kv(value, call.groups)).transpose(1, 2).contiguous()
    for instrument in run.instruments:
        new = instrument.on_output(call, output)
        if new is not None:
            output = new
    return output, weights


def supports(model: Any) -> bool:
    """Whether `model` can be switched to tx_magic's attention function (a transformers 5 model)."""
    return hasattr(model, "set_attn_implementation") and getattr(model, "config", None) is not None


@contextlib.contextmanager
def instrumented(model: Any, *instruments: Instrument) -> Iterator[Run]:
    """Passes of `model` inside the block go through `instruments` (see the module docstring).

    The model is in eval mode and uses tx_magic's attention function for the block; both are put back
    when it ends, however it ends. Gradients are whatever the caller's context allows.
    """
    register(IMPLEMENTATION, _attention, mask="eager")
    with switched_to(model, IMPLEMENTATION, _RUN, Run(instruments)) as run:
        yield run
