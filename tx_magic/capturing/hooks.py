"""Capture attention from any `torch.nn.Module` with forward hooks.

tx_magic finds attention weights in a model that is not a transformers model (or that gives
none through ``output_attentions``) in four ways, during one forward pass:

1. **The protocol** (for your own models): after its forward, a module holds its attention
   probabilities in ``self.tx_magic_attention``, a tensor (batch, heads, queries, keys) or
   (heads, queries, keys), or a method of that name returning one. A class attribute
   ``tx_magic_kind`` ("self", "encoder", "decoder" or "cross") says which attention it is;
   without it the kind comes from the module's name. When any module follows the protocol,
   only protocol modules are read::

       class MyAttention(torch.nn.Module):
           tx_magic_kind = "self"                      # optional
           def forward(self, x):
               probs = scores.softmax(-1)              # (batch, heads, q, k)
               self.tx_magic_attention = probs
               ...

2. Modules that keep their weights after forward in an attribute (``attn`` as in the
   annotated transformer's ``MultiHeadedAttention``, ``attn_weights``, ``attention_probs``...).
3. ``torch.nn.MultiheadAttention``: asked for per-head weights for the pass
   (``need_weights=True, average_attn_weights=False``); its caller still gets what it asked for.
4. Modules that return ``(output, weights)`` where weights look like attention (rows of
   non-negative numbers summing to 1).

The model is called as ``model(ids)`` (``model(source_ids, target_ids)`` with a target), ids a
(1, n) LongTensor; a model that needs something else defines ``tx_magic_forward(self, ids,
target_ids=None)``, which tx_magic calls instead. Layers come in module order; kinds are
"encoder", "decoder" and "cross" for an encoder-decoder (a target given), else "self".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import TxMagicError
from ..core.tokens import Tokens
from ..core.trace import KIND_SEQUENCES
from .arrays import heads_queries_keys, to_numpy
from .model_state import evaluating, hook_handles, without_mha_fast_path

#: Name of the protocol attribute / method, and of the optional kind declaration.
PROTOCOL_ATTRIBUTE = "tx_magic_attention"
PROTOCOL_KIND = "tx_magic_kind"
PROTOCOL_FORWARD = "tx_magic_forward"
#: Attributes where common implementations keep the last forward's attention probabilities.
KEPT_ATTRIBUTES = ("attn", "attn_weights", "attention_weights", "attention_probs", "attn_probs", "attn_map",
                   "attention_map")
#: Module-name parts that mark encoder-decoder ("cross") attention.
CROSS_NAMES = ("cross", "src_attn", "encoder_attn", "enc_dec", "multihead_attn", "encdec")

PROTOCOL_HELP = (
    "Make an attention module store its probabilities after forward as `self.tx_magic_attention` "
    "(a tensor (batch, heads, queries, keys)), or keep them in `self.attn`, or return (output, weights); "
    "torch.nn.MultiheadAttention is found by itself. See help(tx_magic.capturing.hooks)."
)


class AttentionShapeError(TxMagicError, ValueError):
    """Attention weights found in a model do not have the shape tx_magic needs."""


@dataclass
class Record:
    """One call of one attention module: its weights (heads, queries, keys) on the CPU."""

    name: str
    order: int
    call: int
    weights: Any
    kind: str | None  # declared by the protocol, else None


def record_attention(model: Any, run: Callable[[], Any]) -> list[Record]:
    """Call `run()` (one forward of `model`) with hooks on every submodule; the attention they saw.

    The model runs in eval mode without gradients and is put back as it was; nothing is left hooked.
    """
    import torch

    names = {id(m): (i, n) for i, (n, m) in enumerate(model.named_modules())}
    protocol: list[Record] = []
    found: list[Record] = []
    calls: dict[int, int] = {}
    seen: list[Any] = []
    mha_requests: dict[int, list[tuple[bool, bool]]] = {}

    def add(target: list[Record], module: Any, weights: Any, kind: str | None) -> None:
        if any(weights is s for s in seen):
            return  # the same tensor passed up by a parent module
        seen.append(weights)
        order, name = names.get(id(module), (len(names), type(module).__name__))
        call = calls.get(id(module), 0)
        calls[id(module)] = call + 1
        target.append(Record(name, order, call, _per_head(weights, name), kind))

    def pre_mha(module: Any, given: tuple[Any, ...], given_kwargs: dict[str, Any]
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = list(given), dict(given_kwargs)
        # forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)
        for i, key in ((4, "need_weights"), (6, "average_attn_weights")):
            if len(args) > i:
                kwargs[key] = args[i]
        del args[4:]
        if len(args) > 3:
            kwargs.setdefault("key_padding_mask", args.pop(3))
        mha_requests.setdefault(id(module), []).append(
            (bool(kwargs.get("need_weights", True)), bool(kwargs.get("average_attn_weights", True))))
        kwargs["need_weights"], kwargs["average_attn_weights"] = True, False
        return tuple(args), kwargs

    def post(module: Any, _inputs: Any, output: Any) -> Any:
        if hasattr(module, PROTOCOL_ATTRIBUTE):
            value = getattr(module, PROTOCOL_ATTRIBUTE)
            value = value() if callable(value) and not isinstance(value, torch.Tensor) else value
            if value is not None:
                add(protocol, module, value, getattr(module, PROTOCOL_KIND, None))
            return None
        if isinstance(module, torch.nn.MultiheadAttention) and mha_requests.get(id(module)):
            need, average = mha_requests[id(module)].pop()
            out, weights = output
            if weights is not None:
                add(found, module, weights, None)
            if not need:
                return out, None
            return out, (weights.mean(dim=1) if average and weights is not None else weights)
        for attr in KEPT_ATTRIBUTES:
            value = module.__dict__.get(attr)
            if isinstance(value, torch.Tensor) and value.ndim in (3, 4):
                add(found, module, value, None)
                return None
        if isinstance(output, (tuple, list)) and len(output) >= 2 and _looks_like_attention(output[1]):
            add(found, module, output[1], None)
        return None

    with hook_handles() as handles, without_mha_fast_path(), evaluating(model), torch.inference_mode():
        for module in model.modules():
            if hasattr(module, PROTOCOL_ATTRIBUTE) and not callable(getattr(module, PROTOCOL_ATTRIBUTE)):
                setattr(module, PROTOCOL_ATTRIBUTE, None)  # a stale value from an earlier pass is never read
            if isinstance(module, torch.nn.MultiheadAttention):
                handles.append(module.register_forward_pre_hook(pre_mha, with_kwargs=True))
            # prepended: the module's other forward hooks see its usual output
            handles.append(module.register_forward_hook(post, prepend=True))
        run()
    records = protocol or found
    return sorted(records, key=lambda r: (r.order, r.call))


def stack_kinds(records: Sequence[Record], sequences: dict[str, Tokens], name: str) -> dict[str, np.ndarray]:
    """Group records by kind and stack each kind's layers into (layers, heads, queries, keys) float32."""
    encoder_decoder = "source" in sequences
    lengths = {s: len(t) for s, t in sequences.items()}
    groups: dict[str, list[Record]] = {}
    for record in records:
        kind = _kind(record, encoder_decoder, lengths)
        q_seq, k_seq = KIND_SEQUENCES[kind]
        want = (lengths[q_seq], lengths[k_seq])
        if tuple(record.weights.shape[1:]) != want:
            raise AttentionShapeError(
                f"{record.name} ({kind} attention) gave weights for {record.weights.shape[1]} x "
                f"{record.weights.shape[2]} query x key positions, but there are {want[0]} x {want[1]} tokens. "
                "The tokenizer must give the tokens the model sees (one weight row and column per token)."
            )
        groups.setdefault(kind, []).append(record)
    out = {}
    for kind in KIND_SEQUENCES:
        if kind not in groups:
            continue
        heads = {r.weights.shape[0] for r in groups[kind]}
        if len(heads) > 1:
            detail = ", ".join(f"{r.name}: {r.weights.shape[0]}" for r in groups[kind])
            raise AttentionShapeError(f"The {kind} attention layers of {name} have different head counts ({detail}).")
        out[kind] = np.stack([r.weights for r in groups[kind]]).astype(np.float32, copy=False)
    return out


def _kind(record: Record, encoder_decoder: bool, lengths: dict[str, int]) -> str:
    declared = record.kind
    if declared is not None:
        if declared not in KIND_SEQUENCES:
            raise TxMagicError(f"{record.name}.{PROTOCOL_KIND} is {declared!r}; use one of {list(KIND_SEQUENCES)}.")
        if (declared == "self") == encoder_decoder:
            raise TxMagicError(
                f"{record.name} says it is {declared} attention, but "
                + ("a target was given (an encoder-decoder run)." if encoder_decoder else "no target was given: "
                   "give target=... (in %%explain: a line --- before it).")
            )
        return declared
    if not encoder_decoder:
        return "self"
    lowered = record.name.lower()
    parts = lowered.split(".")
    if any(c in lowered for c in CROSS_NAMES):
        return "cross"
    if any(p.startswith("dec") for p in parts):
        return "decoder"
    if any(p.startswith("enc") for p in parts):
        return "encoder"
    q, k = record.weights.shape[1:]
    src, tgt = lengths["source"], lengths["target"]
    if src != tgt:
        for kind, shape in (("encoder", (src, src)), ("decoder", (tgt, tgt)), ("cross", (tgt, src))):
            if (q, k) == shape:
                return kind
    raise TxMagicError(
        f"Cannot tell whether {record.name} is encoder, decoder or cross attention: give the module a "
        f"class attribute {PROTOCOL_KIND} = 'encoder' / 'decoder' / 'cross'."
    )


def _per_head(weights: Any, name: str) -> np.ndarray:
    """(heads, queries, keys) float32 on the CPU from what a module gave (batch 1, or no batch)."""
    try:
        arr = to_numpy(weights, f"the attention of {name}")
    except TypeError as exc:
        raise AttentionShapeError(str(exc)) from None
    layer = heads_queries_keys(arr[:1] if arr.ndim == 4 else arr)  # the first item of a batch: tx_magic runs one
    if layer is None:
        raise AttentionShapeError(
            f"{name} gave attention weights of shape {tuple(np.shape(weights))}; tx_magic needs "
            "(batch, heads, queries, keys) or (heads, queries, keys)."
        )
    return np.array(layer, dtype=np.float32)


def _looks_like_attention(value: Any) -> bool:
    """A tensor (batch, heads, q, k) or (heads, q, k) of non-negative rows summing to 1."""
    import torch

    if not isinstance(value, torch.Tensor) or value.ndim not in (3, 4) or not value.is_floating_point():
        return False
    if value.numel() == 0 or value.device.type == "meta":
        return False
    v = value.detach().float()
    return bool((v >= 0).all() and torch.allclose(v.sum(-1), torch.ones((), device=v.device), atol=1e-3))


