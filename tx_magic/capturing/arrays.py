"""Attention arrays from any framework into a `Trace`: conversion and validation.

`tx_magic.show(attentions, tokens)` accepts numpy, torch, JAX or TensorFlow arrays (anything
with ``__array__``, ``.numpy()`` or ``.detach().cpu()``), shaped (layers, heads, q, k),
(heads, q, k) or (q, k), a list of per-layer arrays, or a dict per kind
(``{"encoder": ..., "decoder": ..., "cross": ...}``) with tokens per sequence
(``{"source": [...], "target": [...]}``).

Checks: shapes against the tokens (refused, saying which dimension), NaN or infinite weights
(kept, shown as masked, with a warning naming the first one), negative weights and rows that do
not sum to 1 (a warning; still shown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.checks import causal_masks, check_copy_fits
from ..core.errors import TxMagicError
from ..core.tokens import Tokens
from ..core.trace import KIND_SEQUENCES, Trace


class AttentionArrayError(TxMagicError, ValueError):
    """Attention arrays given to `show` that cannot be shown (wrong shape, not numbers)."""


def to_numpy(value: Any, what: str = "the attention") -> np.ndarray:
    """`value` as a numpy array: numpy, torch (any device, bfloat16 too), JAX, TensorFlow, lists."""
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if callable(detach):  # torch: off the graph, onto the CPU, bfloat16/float16 widened
        value = detach()
        if hasattr(value, "is_floating_point") and value.is_floating_point():
            value = value.float()
        return np.asarray(value.cpu().numpy())
    numpy = getattr(value, "numpy", None)
    if callable(numpy) and not hasattr(value, "__array__"):
        return np.asarray(numpy())
    if hasattr(value, "__array__") or isinstance(value, (list, tuple, int, float)):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"Could not read {what} as an array: {exc}") from None
        if arr.dtype == object:
            raise TypeError(f"Could not read {what} as an array of numbers (ragged or mixed values).")
        return arr
    raise TypeError(
        f"Could not read {what} ({type(value).__name__}) as an array: give a numpy, torch, JAX or "
        "TensorFlow array (anything numpy.asarray reads)."
    )


def as_layers(value: Any, what: str = "attention") -> np.ndarray:
    """One kind's weights as float32 (layers, heads, queries, keys).

    A 4-d array is (layers, heads, q, k); 3-d (heads, q, k) is one layer; 2-d (q, k) one head. A
    list or tuple of arrays is one array per layer (each (heads, q, k), (q, k), or (1, heads, q, k)
    with a batch of one, as transformers returns them); a 5-d array (layers, 1, heads, q, k) likewise.
    """
    if isinstance(value, (list, tuple)) and value and not _is_number(value[0]) and not _is_nested_numbers(value):
        layers = [_one_layer(to_array(v, f"{what} layer {i}"), f"{what} layer {i}") for i, v in enumerate(value)]
        shapes = {layer.shape for layer in layers}
        if len(shapes) > 1:
            raise AttentionArrayError(
                f"The {what} layers differ in shape ({', '.join(str(layer.shape) for layer in layers)}): every layer "
                "needs the same heads x queries x keys."
            )
        check_copy_fits(what, None, (len(layers), *layers[0].shape))
        return np.stack(layers).astype(np.float32, copy=False)
    arr = to_array(value, what)
    if arr.ndim == 5 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise AttentionArrayError(
            f"The {what} array has shape {arr.shape}; give (layers, heads, queries, keys), (heads, queries, keys), "
            "(queries, keys), or a list with one array per layer."
        )
    check_copy_fits(what, arr, arr.shape)  # a huge float64 or strided array: refused before the copy
    return np.ascontiguousarray(arr, dtype=np.float32)


def to_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = to_numpy(value, what)
    except TypeError as exc:
        raise AttentionArrayError(str(exc)) from None
    if arr.dtype.kind not in "fiub":
        raise AttentionArrayError(f"The {what} holds {arr.dtype} values; give numbers (attention probabilities).")
    return arr


def heads_queries_keys(arr: np.ndarray) -> np.ndarray | None:
    """One layer's weights as (heads, queries, keys): a leading batch of one dropped, a lone head's
    (queries, keys) given its heads axis; None for any other shape."""
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 2:
        arr = arr[None]
    return arr if arr.ndim == 3 else None


def _one_layer(arr: np.ndarray, what: str) -> np.ndarray:
    layer = heads_queries_keys(arr)
    if layer is None:
        raise AttentionArrayError(f"The {what} has shape {arr.shape}; give (heads, queries, keys) or (queries, keys).")
    return layer


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number))


def _is_nested_numbers(value: Sequence[Any]) -> bool:
    """A plain nested list of numbers (one array written as lists), not a list of per-layer arrays."""
    first = value[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    return _is_number(first) and isinstance(value[0], (list, tuple))


def _token_list(tokens: Any, n: int, what: str) -> Tokens:
    if tokens is None:
        return Tokens(text=tuple(str(i) for i in range(n)))
    if isinstance(tokens, Tokens):
        seq = tokens
    elif isinstance(tokens, str):
        raise AttentionArrayError(f"The {what} tokens are one string; give a list of token strings.")
    else:
        try:
            items = list(tokens.tolist() if hasattr(tokens, "tolist") else tokens)
        except TypeError:
            raise AttentionArrayError(f"The {what} tokens must be a list of strings, got {type(tokens).__name__}.") \
                from None
        ids = tuple(int(t) for t in items) if items and all(isinstance(t, (int, np.integer)) for t in items) else ()
        seq = Tokens(text=tuple(str(t) for t in items), ids=ids)
    if len(seq) != n:
        raise AttentionArrayError(f"There are {len(seq)} {what} tokens but the attention has {n} positions there.")
    return seq


def trace_from_arrays(attentions: Any, tokens: Any = None, *, name: str = "attention arrays") -> Trace:
    """A `Trace` from attention arrays of any framework (see the module docstring) and their tokens.

    `tokens` is a list of strings for self-attention (or a `Tokens`), or a dict per sequence
    (``{"source": [...], "target": [...]}``) for encoder/decoder/cross kinds; None numbers the positions.
    """
    if isinstance(attentions, Mapping):
        unknown = [k for k in attentions if k not in KIND_SEQUENCES]
        if unknown:
            raise AttentionArrayError(f"Unknown attention kind {unknown[0]!r}: use {list(KIND_SEQUENCES)}.")
        kinds = {k: as_layers(v, f"{k} attention") for k, v in attentions.items()}
        if "self" in kinds and len(kinds) > 1:
            raise AttentionArrayError("Give either self attention, or encoder / decoder / cross attention, not both.")
    else:
        kinds = {"self": as_layers(attentions)}
    if not kinds:
        raise AttentionArrayError("No attention given: the dict is empty.")
    per_sequence: Mapping[str, Any]
    if isinstance(tokens, Mapping):
        per_sequence = tokens
    elif "self" in kinds:
        per_sequence = {"input": tokens}
    elif tokens is None:
        per_sequence = {}
    else:
        raise AttentionArrayError('Give the tokens per sequence: tokens={"source": [...], "target": [...]}.')
    sequences: dict[str, Tokens] = {}
    lengths: dict[str, int] = {}
    for kind, att in kinds.items():
        q_seq, k_seq = KIND_SEQUENCES[kind]
        for seq, n, axis in ((q_seq, att.shape[2], "query"), (k_seq, att.shape[3], "key")):
            if lengths.setdefault(seq, n) != n:
                raise AttentionArrayError(
                    f"The {kind} attention has {n} {axis} positions but another kind has {lengths[seq]} {seq} tokens."
                )
            if seq not in sequences:
                if seq not in per_sequence and tokens is not None and isinstance(tokens, Mapping):
                    raise AttentionArrayError(f"The {kind} attention needs {seq} tokens: add tokens[{seq!r}].")
                sequences[seq] = _token_list(per_sequence.get(seq), n, seq)
    return Trace(model_name=name, sequences=sequences, attentions=kinds, masks=causal_masks(kinds))
