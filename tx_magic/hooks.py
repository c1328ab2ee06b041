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

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EmptyTextError, NoAttentionError, TxMagicError
from .trace import KIND_SEQUENCES, Tokens, Trace

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
    "torch.nn.MultiheadAttention is found by itself. See help(tx_magic.hooks)."
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


def is_transformers_model(model: Any) -> bool:
    """Whether `model` is a transformers PreTrainedModel (captured through output_attentions)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def has_attentions(outputs: Any, encoder_decoder: bool) -> bool:
    """Whether a transformers model's outputs hold attention weights (output_attentions worked)."""
    fields = ("encoder_attentions", "decoder_attentions", "cross_attentions") if encoder_decoder else ("attentions",)
    for field in fields:
        value = getattr(outputs, field, None)
        if value is None and isinstance(outputs, dict):
            value = outputs.get(field)
        if not [a for a in (value or ()) if a is not None]:
            return False
    return True


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
    from .arrays import to_numpy

    try:
        arr = to_numpy(value, "token ids")
    except TypeError:
        arr = None
    if arr is None or arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
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
        from .tokens import display_tokens

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
        from .capture import _eager_attention

        with _eager_attention(model):
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
    masks: dict[str, np.ndarray] = {}
    for kind, att in attentions.items():
        q, k = att.shape[2:]
        if kind in ("self", "decoder") and q == k and q > 1 and not np.triu(np.nan_to_num(att), k=1).any():
            masks[kind] = np.tril(np.ones((q, k), dtype=bool))
        bad = ~np.isfinite(att)
        if bad.any():
            warnings.append(f"{int(bad.sum())} {kind} attention weights were NaN or infinite (shown as masked).")
    return Trace(model_name=name, sequences=sequences, attentions=attentions, masks=masks, warnings=warnings)


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

    def pre_mha(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        args, kwargs = list(args), dict(kwargs)
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

    handles = []
    cleared = []
    for module in model.modules():
        if hasattr(module, PROTOCOL_ATTRIBUTE) and not callable(getattr(module, PROTOCOL_ATTRIBUTE)):
            cleared.append(module)
            setattr(module, PROTOCOL_ATTRIBUTE, None)  # a stale value from an earlier pass is never read
        if isinstance(module, torch.nn.MultiheadAttention):
            handles.append(module.register_forward_pre_hook(pre_mha, with_kwargs=True))
        # prepended: the module's other forward hooks see its usual output
        handles.append(module.register_forward_hook(post, prepend=True))
    was_training = bool(getattr(model, "training", False))
    fast_path = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # fused kernels skip the modules' forward
    try:
        with torch.inference_mode():
            run()
    finally:
        for handle in handles:
            handle.remove()
        torch.backends.mha.set_fastpath_enabled(fast_path)
        model.train(was_training)
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
    from .arrays import to_numpy

    try:
        arr = to_numpy(weights, f"the attention of {name}")
    except TypeError as exc:
        raise AttentionShapeError(str(exc)) from None
    if arr.ndim == 4:
        arr = arr[0]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise AttentionShapeError(
            f"{name} gave attention weights of shape {tuple(np.shape(weights))}; tx_magic needs "
            "(batch, heads, queries, keys) or (heads, queries, keys)."
        )
    return np.array(arr, dtype=np.float32)


def _looks_like_attention(value: Any) -> bool:
    """A tensor (batch, heads, q, k) or (heads, q, k) of non-negative rows summing to 1."""
    import torch

    if not isinstance(value, torch.Tensor) or value.ndim not in (3, 4) or not value.is_floating_point():
        return False
    if value.numel() == 0 or value.device.type == "meta":
        return False
    v = value.detach().float()
    return bool((v >= 0).all() and torch.allclose(v.sum(-1), torch.ones((), device=v.device), atol=1e-3))


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
    import torch
    from types import SimpleNamespace

    from . import memory

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


def input_device(model: Any) -> Any:
    """Where inputs go: the input embedding's device (also for models spread with device_map)."""
    import torch

    device_map = getattr(model, "hf_device_map", None)
    get = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get() if callable(get) else None
    except NotImplementedError:
        embedding = None
    if isinstance(device_map, dict) and device_map:
        names = {id(m): n for n, m in model.named_modules()}
        name = names.get(id(embedding), "") if embedding is not None else ""
        place = next((d for key, d in device_map.items() if name == key or name.startswith(key + ".") or key == ""),
                     None)
        if place is None:
            place = next(iter(device_map.values()))
        if isinstance(place, int):
            return torch.device("cuda", place)
        if place in ("disk", "meta", "cpu"):
            return torch.device("cpu")
        return torch.device(place)
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
        return weight.device
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


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
            return model(**dict(zip(names, args)))
        return call(*args)
    except TxMagicError:
        raise
    except Exception as exc:  # noqa: BLE001 - any model: one clear line saying how to fix it
        shown = "model(source_ids, target_ids)" if tgt is not None else "model(input_ids)"
        if callable(forward):
            shown = f"{PROTOCOL_FORWARD}(...)"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TxMagicError(
            f"Calling {type(model).__name__} as {shown} failed: {type(exc).__name__}: {first}. tx_magic passes "
            f"(1, n) LongTensors of token ids; define {PROTOCOL_FORWARD}(self, ids, target_ids=None) on the model "
            "to call it another way."
        ) from exc
