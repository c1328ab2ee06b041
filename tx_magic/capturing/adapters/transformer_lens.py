"""TransformerLens: `show(cache)` for an `ActivationCache` (v4 `TransformerBridge` and v3 `HookedTransformer`
names, also a cache made with a ``names_filter`` or a plain dict of hook names), and `explain(bridge, text=...)`.

Attention is read from every ``blocks.{i}.attn.hook_pattern`` (encoder-decoders: ``encoder_blocks`` /
``decoder_blocks`` in v4, ``encoder`` / ``decoder`` in v3, ``self_attn`` and ``cross_attn`` inside).
Tokens, when not given, come from the cache's model: the token ids a v4 cache keeps in ``embed.hook_in``,
else the ids whose embedding rows ``hook_embed`` holds (a v3 cache), through the model's tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...core.errors import EmptyTextError, TxMagicError
from ...core.trace import Trace
from ..arrays import to_numpy, trace_from_arrays
from ..display import display_tokens
from ..models import model_name
from .base import Arrays, Unwrapped, instance_of

#: An attention pattern's hook name: the stack, the layer, the attention module.
PATTERN = re.compile(r"^(?P<stack>blocks|encoder_blocks|decoder_blocks|encoder|decoder)\.(?P<layer>\d+)\."
                     r"(?P<attn>attn|self_attn|cross_attn)\.hook_pattern$")
#: Where v4 caches keep the input token ids (an encoder-decoder's decoder ids too), and v3/v4 the token embeddings.
TOKEN_IDS_HOOK = "embed.hook_in"
DECODER_IDS_HOOK = "decoder_embed.hook_in"
EMBED_HOOK = "hook_embed"
#: Positions compared with the embedding matrix at a time when finding token ids from embeddings.
_CHUNK = 64


class CacheError(TxMagicError, ValueError):
    """A TransformerLens cache that tx_magic cannot show (no patterns, a batch of several texts)."""


def kind_of(stack: str, attn: str) -> str:
    """The tx_magic kind of a pattern hook: self, encoder, decoder or cross."""
    if stack == "blocks":
        return "self"
    if stack.startswith("encoder"):
        return "encoder"
    return "cross" if attn == "cross_attn" else "decoder"


def cache_dict(obj: Any) -> Mapping[str, Any] | None:
    """The hook-name -> tensor mapping of an ActivationCache (v3 or v4) or of a dict of hook names, else None."""
    if type(obj).__name__ == "ActivationCache" and isinstance(getattr(obj, "cache_dict", None), Mapping):
        return obj.cache_dict  # type: ignore[no-any-return]
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj) \
            and any(PATTERN.match(k) or k.startswith(("hook_", "blocks.", "embed.")) for k in obj):
        return obj
    return None


def is_cache(obj: Any) -> bool:
    """Whether `obj` is a TransformerLens cache (or a dict of its hook names)."""
    return cache_dict(obj) is not None


def cache_arrays(obj: Any, tokens: Any = None) -> Arrays:
    """The attention patterns of a TransformerLens cache, with tokens (given, or from the cache's model)."""
    entries = cache_dict(obj)
    assert entries is not None
    model = getattr(obj, "model", None)
    per_kind: dict[str, dict[int, np.ndarray]] = {}
    for key, value in entries.items():
        match = PATTERN.match(key)
        if match and value is not None:
            layers = per_kind.setdefault(kind_of(match["stack"], match["attn"]), {})
            layers[int(match["layer"])] = _one_text(to_numpy(value, key), key)
    if not per_kind:
        raise CacheError(
            "The cache holds no attention patterns (blocks.{i}.attn.hook_pattern): run run_with_cache without a "
            "names_filter, or with names_filter=lambda name: name.endswith('hook_pattern').")
    warnings: list[str] = []
    attentions: dict[str, Any] = {}
    for kind, layers in per_kind.items():
        numbers = sorted(layers)
        expected = _layer_count(model, kind)
        if numbers != list(range(expected if expected else numbers[-1] + 1)):
            shown = "layer 0" if len(numbers) == 1 else f"layers 0-{len(numbers) - 1}"
            warnings.append(f"The cache holds the {kind} attention patterns of layer{'s' * (len(numbers) > 1)} "
                            f"{_listed(numbers)} only (made with a names_filter?): shown as {shown} here.")
        attentions[kind] = np.stack([layers[i] for i in numbers])
    name = _display_name(model)
    if set(attentions) == {"self"}:
        n = attentions["self"].shape[-1]
        shown, note = _self_tokens(entries, model, tokens, n)
        if note:
            warnings.append(note)
        return Arrays(attentions["self"], shown, name, warnings)
    if tokens is None:
        tokens = _encoder_decoder_tokens(entries, model, attentions)
        if tokens is None:
            warnings.append("The cache does not say which tokens it saw: positions are numbered. Pass them: "
                            'show(cache, {"source": [...], "target": [...]}).')
    return Arrays(attentions, tokens, name, warnings)


def _encoder_decoder_tokens(entries: Mapping[str, Any], model: Any, attentions: Mapping[str, np.ndarray]) \
        -> dict[str, Any] | None:
    """Source and target tokens from the encoder and decoder ids a v4 cache keeps, when both fit the patterns."""
    tokenizer = getattr(model, "tokenizer", None)
    lengths = {"source": next((a.shape[-1] for k, a in attentions.items() if k in ("encoder", "cross")), None),
               "target": next((a.shape[-2] for k, a in attentions.items() if k in ("decoder", "cross")), None)}
    found: dict[str, Any] = {}
    for seq, hook in (("source", TOKEN_IDS_HOOK), ("target", DECODER_IDS_HOOK)):
        if lengths[seq] is None:
            continue
        held = entries.get(hook)
        arr = to_numpy(held, hook) if held is not None else None
        if tokenizer is None or arr is None or arr.dtype.kind not in "iu" or arr.shape[-1] != lengths[seq]:
            return None
        found[seq] = display_tokens(tokenizer, _ids(arr))
    return found


def _one_text(arr: np.ndarray, key: str) -> np.ndarray:
    """One text's (heads, q, k) pattern; a batch of one dropped, a larger batch refused."""
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise CacheError(
                f"The cache holds a batch of {arr.shape[0]} texts ({key} is {tuple(arr.shape)}): show one, e.g. "
                "show(cache.apply_slice_to_batch_dim(0)), or run run_with_cache on one text.")
        arr = arr[0]
    if arr.ndim != 3:
        raise CacheError(f"{key} has shape {tuple(arr.shape)}; a pattern is (batch, heads, queries, keys).")
    return arr


def _self_tokens(entries: Mapping[str, Any], model: Any, tokens: Any, n: int) -> tuple[Any, str | None]:
    """Tokens for a self-attention cache: as given (strings, or ids / a text through the model), else
    the ids the cache itself holds; numbered positions (with a note saying how to pass them) otherwise."""
    tokenizer = getattr(model, "tokenizer", None)
    if isinstance(tokens, str):
        if model is None or not callable(getattr(model, "to_tokens", None)):
            raise CacheError("Tokens given as one string need the cache's model to split them: pass "
                             "model.to_str_tokens(text) instead.")
        return display_tokens(tokenizer, _ids(model.to_tokens(tokens))), None
    if tokens is not None:
        values = tokens.tolist() if hasattr(tokens, "tolist") else tokens
        flat = values[0] if isinstance(values, list) and len(values) == 1 and isinstance(values[0], list) else values
        if tokenizer is not None and isinstance(flat, list) and flat and all(isinstance(t, int) for t in flat):
            return display_tokens(tokenizer, flat), None
        return flat, None
    ids = cached_ids(entries, model)
    if ids is not None and tokenizer is not None and len(ids) == n:
        return display_tokens(tokenizer, ids), None
    return None, ("The cache does not say which tokens it saw: positions are numbered. Pass them: "
                  "show(cache, model.to_str_tokens(text)), or show(cache, text).")


def cached_ids(entries: Mapping[str, Any], model: Any) -> list[int] | None:
    """The input token ids a cache saw: v4's ``embed.hook_in``, else found from ``hook_embed`` (the
    token embeddings) in the model's embedding matrix, when every position matches a row exactly."""
    held = entries.get(TOKEN_IDS_HOOK)
    if held is not None:
        arr = to_numpy(held, TOKEN_IDS_HOOK)
        if arr.dtype.kind in "iu":
            return _ids(arr)
    embedded, table = entries.get(EMBED_HOOK), getattr(model, "W_E", None)
    if embedded is None or table is None:
        return None
    return ids_from_embeddings(embedded, table)


def ids_from_embeddings(embedded: Any, table: Any) -> list[int] | None:
    """Ids whose rows of `table` (vocab, d) equal the vectors `embedded` ((1, n, d) or (n, d)); None if one has no
    exact match."""
    import torch

    with torch.inference_mode():
        vectors = torch.as_tensor(embedded).detach().float().cpu()
        vectors = vectors[0] if vectors.dim() == 3 else vectors
        rows = torch.as_tensor(table).detach().float().cpu()
        if vectors.dim() != 2 or rows.dim() != 2 or vectors.shape[-1] != rows.shape[-1]:
            return None
        found: list[int] = []
        for start in range(0, len(vectors), _CHUNK):
            chunk = vectors[start:start + _CHUNK]
            best = torch.cdist(chunk, rows).argmin(dim=-1)
            if not torch.equal(rows[best], chunk):
                return None
            found.extend(int(i) for i in best)
    return found


def _ids(value: Any) -> list[int]:
    arr = to_numpy(value, "token ids")
    return [int(i) for i in (arr[0] if arr.ndim == 2 else arr)]


def _layer_count(model: Any, kind: str) -> int | None:
    cfg = getattr(model, "cfg", None)
    count = getattr(cfg, "n_layers", None)
    return int(count) if isinstance(count, int) and kind == "self" else None


def _listed(numbers: list[int]) -> str:
    return ", ".join(str(i) for i in numbers)


def _display_name(model: Any) -> str:
    name = getattr(getattr(model, "cfg", None), "model_name", None)
    if isinstance(name, str) and name:
        return name.rstrip("/").split("/")[-1]
    return "TransformerLens cache"


def is_bridge(obj: Any) -> bool:
    """A TransformerLens 4 `TransformerBridge` (a transformers model inside, in ``original_model``)."""
    return instance_of(obj, "transformer_lens.model_bridge", "TransformerBridge") or (
        instance_of(obj, "transformer_lens.model_bridge.transformer_bridge", "TransformerBridge"))


def is_hooked_model(obj: Any) -> bool:
    """A TransformerLens model run through its own cache: v3's HookedTransformer (no transformers model inside)."""
    return (type(obj).__module__.startswith("transformer_lens") and callable(getattr(obj, "run_with_cache", None))
            and callable(getattr(obj, "to_tokens", None)) and getattr(obj, "tokenizer", None) is not None)


def unwrap(obj: Any) -> Unwrapped | None:
    """A bridge as its transformers model and tokenizer (whose BOS the bridge set up, as in its own runs); a v3
    HookedTransformer as a runner of its cache; anything else None."""
    if is_bridge(obj) and getattr(obj, "original_model", None) is not None:
        inner = obj.original_model
        return Unwrapped(inner, obj.tokenizer, model_name(inner), source="TransformerLens TransformerBridge")
    if is_hooked_model(obj):
        return Unwrapped(obj, obj.tokenizer, _display_name(obj), runner=lambda text, max_tokens, name:
                         run_cached(obj, text, max_tokens=max_tokens, name=name),
                         source=f"TransformerLens {type(obj).__name__}")
    return None


def run_cached(model: Any, text: str, *, max_tokens: int | None = None, name: str | None = None) -> Trace:
    """Run a TransformerLens model on `text` with a cache of its attention patterns only; its `Trace`."""
    import torch

    if not str(text).strip():
        raise EmptyTextError("Nothing to explain: the text is empty. Give some text, e.g. `%explain The cat sat.`")
    ids = model.to_tokens(text)
    warnings: list[str] = []
    if max_tokens is not None and ids.shape[-1] > max_tokens:
        warnings.append(f"The text has {ids.shape[-1]} tokens: truncated to {max_tokens}.")
        ids = ids[..., :max_tokens]
    with torch.inference_mode():
        _, cache = model.run_with_cache(ids, names_filter=lambda hook: PATTERN.match(hook) is not None)
    arrays = cache_arrays(cache, display_tokens(model.tokenizer, _ids(ids)))
    trace = trace_from_arrays(arrays.attentions, arrays.tokens, name=name or arrays.name)
    trace.warnings.extend(warnings + arrays.warnings)
    return trace
