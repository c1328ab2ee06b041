"""Capture any `torch.nn.Module` with a callable tokenizer: token ids in, attention found by hooks
(`tx_magic.capturing.hooks` says how a model reports its attention)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.checks import causal_masks
from ..core.errors import EmptyTextError, NoAttentionError, TxMagicError
from ..core.tokens import Tokens
from ..core.trace import Trace
from . import memory
from .arrays import to_numpy
from .display import display_tokens
from .hooks import KEPT_ATTRIBUTES, PROTOCOL_ATTRIBUTE, PROTOCOL_FORWARD, PROTOCOL_HELP, record_attention, stack_kinds
from .model_state import eager_attention
from .models import input_device, is_transformers_model


def token_ids(value: Any, what: str = "The tokenizer") -> list[int]:
    """Token ids of one sequence from whatever a tokenizer returned: a list or tensor (1, n) or (n,)
    of ints, a dict (or BatchEncoding) with ``input_ids``, or an object with ``.ids``."""
    if isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "__getitem__") and not
                                   hasattr(value, "shape")):
        if "input_ids" not in value:
            raise TxMagicError(f"{what} returned a dict without input_ids: give token ids, a list or tensor of ints.")
        value = value["input_ids"]
    elif hasattr(value, "ids") and not hasattr(value, "shape"):
        value = value.ids
    try:
        arr = to_numpy(value, "token ids")
    except TypeError:
        arr = None
    if arr is None or (arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))):
        raise TxMagicError(
            f"{what} returned {type(value).__name__}; tx_magic needs token ids: a list or tensor of ints "
            "(or a dict with input_ids)."
        )
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise TxMagicError(f"{what} returned token ids of shape {tuple(arr.shape)}: give one sequence, (n,) or (1, n).")
    return [int(i) for i in arr]


def display_ids(tokenizer: Any, ids: Sequence[int]) -> Tokens:
    """Tokens for ids from any tokenizer: a transformers tokenizer's own strings, else each id
    decoded where the tokenizer can decode, else the id itself."""
    ids = [int(i) for i in ids]
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        try:
            return display_tokens(tokenizer, ids)
        except Exception:  # noqa: BLE001 - a tokenizer-like object that only looks the part
            pass
    decode = getattr(tokenizer, "decode", None)
    text = []
    for i in ids:
        shown = None
        if callable(decode):
            try:
                shown = decode([i])
            except Exception:  # noqa: BLE001 - any tokenizer: fall back to the id
                shown = None
        if not isinstance(shown, str) or not shown.strip():
            shown = str(i)
        text.append(shown.strip())
    return Tokens(text=tuple(text), ids=tuple(ids))


def capture_module(model: Any, tokenizer: Any, text: str | None = None, *, target: str | None = None,
                   ids: Sequence[int] | None = None, target_ids: Sequence[int] | None = None,
                   max_tokens: int | None = None, name: str | None = None) -> Trace:
    """Run any torch module once on `text` (or `ids`) and return its `Trace`, attention found by hooks.

    `tokenizer` is any callable giving token ids for a text (see `token_ids`); with `ids` given it
    may be None (tokens then show as ids). `target` / `target_ids` make it an encoder-decoder run.
    """
    name = name or type(model).__name__
    warnings: list[str] = []
    src = _ids_of(tokenizer, text, ids, "text")
    tgt = None
    if target is not None or target_ids is not None:
        tgt = _ids_of(tokenizer, target, target_ids, "target")
    if max_tokens is not None:
        for seq, what in ((src, "text"), (tgt, "target")):
            if seq is not None and len(seq) > max_tokens:
                warnings.append(f"The {what} has {len(seq)} tokens; only the first {max_tokens} are shown.")
                del seq[max_tokens:]
    _check_vocab(model, src + (tgt or []))
    _guard_memory(model, max(len(src), len(tgt or ())))
    if is_transformers_model(model):  # its own eager attention, which returns the weights
        with eager_attention(model):
            records = record_attention(model, lambda: _call(model, src, tgt))
    else:
        records = record_attention(model, lambda: _call(model, src, tgt))
    if not records:
        raise NoAttentionError(f"tx_magic found no attention weights in {name}. {PROTOCOL_HELP}")
    sequences: dict[str, Tokens]
    if tgt is None:
        sequences = {"input": display_ids(tokenizer, src)}
    else:
        sequences = {"source": display_ids(tokenizer, src), "target": display_ids(tokenizer, tgt)}
    attentions = stack_kinds(records, sequences, name)
    return Trace(model_name=name, sequences=sequences, attentions=attentions, masks=causal_masks(attentions),
                 warnings=warnings)


def _ids_of(tokenizer: Any, text: str | None, ids: Sequence[int] | None, what: str) -> list[int]:
    if ids is not None:
        out = token_ids(ids, f"The {what} ids")
    else:
        if text is None or not str(text).strip():
            raise EmptyTextError(f"Nothing to explain: the {what} is empty. Give some text, or token ids (ids=[...]).")
        if tokenizer is None or not callable(tokenizer):
            raise TxMagicError("Give a tokenizer: any callable that turns the text into token ids "
                               "(e.g. lambda text: [vocab[w] for w in text.split()]), or pass ids=[...].")
        out = token_ids(tokenizer(str(text)))
    if not out:
        raise EmptyTextError(f"The {what} gave no tokens. Give some text the tokenizer can read.")
    return out


def _check_vocab(model: Any, ids: Sequence[int]) -> None:
    """Refuse ids the model's input embedding cannot look up (a clear message, not an IndexError)."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get() if callable(get) else None
    except NotImplementedError:
        embedding = None
    size = getattr(embedding, "num_embeddings", None)
    bad = [i for i in ids if i < 0 or (size is not None and i >= size)]
    if bad:
        raise TxMagicError(f"Token id {bad[0]} is outside the model's vocabulary (0..{(size or 1) - 1}).")


def _guard_memory(model: Any, n: int) -> None:
    """The memory guard, from the attention modules that say how many heads they have."""
    from types import SimpleNamespace

    import torch

    heads = []
    for module in model.modules():
        if isinstance(module, torch.nn.MultiheadAttention):
            heads.append(module.num_heads)
        else:
            h = next((getattr(module, a) for a in ("num_heads", "n_heads", "h", "heads")
                      if isinstance(getattr(module, a, None), int)), None)
            if h and (hasattr(module, PROTOCOL_ATTRIBUTE) or any(hasattr(module, a) for a in KEPT_ATTRIBUTES)):
                heads.append(h)
    if heads:
        config = SimpleNamespace(num_hidden_layers=len(heads), num_attention_heads=max(heads))
        memory.plan_capture(SimpleNamespace(config=config), n, streamable=False)


def _call(model: Any, src: list[int], tgt: list[int] | None) -> Any:
    import torch

    device = input_device(model)
    args = [torch.tensor([src], device=device)]
    if tgt is not None:
        args.append(torch.tensor([tgt], device=device))
    forward = getattr(model, PROTOCOL_FORWARD, None)
    call = forward if callable(forward) else model
    try:
        if not callable(forward) and is_transformers_model(model):
            names = ("input_ids", "decoder_input_ids")
            return model(**dict(zip(names, args, strict=False)))  # args: the source, then the target if any
        return call(*args)
    except TxMagicError:
        raise
    except Exception as exc:  # any model failure: one clear line saying how to fix it (re-raised)
        shown = "model(source_ids, target_ids)" if tgt is not None else "model(input_ids)"
        if callable(forward):
            shown = f"{PROTOCOL_FORWARD}(...)"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TxMagicError(
            f"Calling {type(model).__name__} as {shown} failed: {type(exc).__name__}: {first}. tx_magic passes "
            f"(1, n) LongTensors of token ids; define {PROTOCOL_FORWARD}(self, ids, target_ids=None) on the model "
            "to call it another way."
        ) from exc
