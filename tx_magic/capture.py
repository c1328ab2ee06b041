"""Capture one forward pass of a model into a `Trace`.

transformers 5 defaults to sdpa, which returns no attention weights, so capture switches
the model to its own eager attention for the pass (exactly the model's probabilities) and
switches it back afterwards, with its train/eval mode as it was. Outputs are read by name.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from .errors import (BadTextError, EmptyTextError, MissingTargetError, ModelLoadError, NoAttentionError, OptionError,
                     model_failures)
from . import memory
from .tokens import display_tokens
from .trace import Tokens, Trace

#: Position limits above this are "no real limit" (tokenizers use 1e30 for unbounded).
_NO_LIMIT = 1_000_000


def capture(model: Any, tokenizer: Any, text: str, *, target: str | None = None, pair: str | None = None,
            max_tokens: int | None = None, name: str | None = None, ids: list[int] | None = None,
            image: Any = None) -> Trace:
    """Run `model` once on `text` (and `target` for encoder-decoder models) and return its `Trace`.

    `pair` is a second text encoded with the first as a sentence pair (``tokenizer(text, pair)``);
    each token's ``segment`` says which text it came from. Texts longer than the model takes
    (or than `max_tokens`) are truncated, with a warning kept in ``trace.warnings``.
    `ids` runs these token ids instead of encoding `text` (generation uses it).
    `image` (a PIL image, array or path) runs a ViT-style model with `tokenizer` its image processor.
    Any other torch module (or a transformers model that gives no attentions) is captured with
    forward hooks: see `tx_magic.hooks` for how a custom model reports its attention.
    """
    from . import hooks, images

    _check_inputs(model, max_tokens, text, pair, target)
    if image is not None or images.is_image_input(text, tokenizer):
        return images.capture_image(model, tokenizer, text if image is None else image, name=name)
    plain_tokenizer = not hasattr(tokenizer, "convert_ids_to_tokens")  # any callable (or None with ids)
    if not hooks.is_transformers_model(model) or plain_tokenizer:
        if pair is not None:
            raise hooks.TxMagicError("Sentence pairs need a transformers model and tokenizer; with this model, "
                                     "put both texts in one string.")
        return hooks.capture_module(model, tokenizer, text, target=target, ids=ids, max_tokens=max_tokens, name=name)
    if ids is None and (text is None or not str(text).strip()):
        raise EmptyTextError("Nothing to explain: the text is empty. Give some text, e.g. `%explain The cat sat.`")
    config = getattr(model, "config", None)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    name = name or _model_name(model)
    if encoder_decoder and (target is None or not str(target).strip()):
        raise MissingTargetError(
            f"{name} is an encoder-decoder model: give a target too "
            "(in %%explain: the source, a line `---`, then the target; in Python: target=...)."
        )
    limit = _position_limit(model, tokenizer, max_tokens)
    warnings: list[str] = []

    if pair is not None and not str(pair).strip():
        raise EmptyTextError("The second text of the pair is empty: give some text, or leave the pair out.")
    source = _encode(tokenizer, str(text), limit, "text", name, warnings, pair=pair) if ids is None \
        else _from_ids(tokenizer, ids)
    texts = (str(text), str(pair)) if pair is not None else str(text)
    inputs: dict[str, Any] = {"input_ids": source.ids, "attention_mask": source.attention_mask}
    if source.token_type_ids is not None and any(source.token_type_ids):
        inputs["token_type_ids"] = source.token_type_ids  # text B of a BERT-style pair
    sequences: dict[str, Tokens] = {}
    if encoder_decoder:
        tgt = _encode(tokenizer, str(target), limit, "target", name, warnings, as_target=True)
        dec_ids = _decoder_inputs(model, tgt.ids)
        # The decoder reads [start] + target[:-1]: shift the target's spans along with it.
        dec_offsets = [(0, 0)] + list(tgt.offsets[:-1]) if tgt.offsets else None
        start_special = [True] + list(tgt.special[:-1])
        sequences["source"] = display_tokens(tokenizer, source.ids, text=texts, offsets=source.offsets,
                                             special=source.special, segment=source.segment)
        sequences["target"] = display_tokens(tokenizer, dec_ids, text=str(target), offsets=dec_offsets,
                                             special=start_special)
        inputs["decoder_input_ids"] = dec_ids
    else:
        sequences["input"] = display_tokens(tokenizer, source.ids, text=texts, offsets=source.offsets,
                                            special=source.special, segment=source.segment)

    n = len(source.ids)
    plan = memory.plan_capture(model, n, streamable=not encoder_decoder,
                               target=len(inputs["decoder_input_ids"]) if encoder_decoder else None)
    if plan.mode == memory.STREAMED:
        reduced = _capture_streamed(model, inputs, name)
        warnings.append(
            f"{n} tokens: attention is kept reduced (overview max-pooled over {reduced.tile}x{reduced.tile}-token "
            f"tiles, the top {reduced.top_values.shape[-1]} keys of each token, exact values on request)."
        )
        masks = {"self": _causal_mask(n)} if reduced.causal else {}
        return Trace(model_name=name, sequences=sequences, attentions={"self": reduced}, masks=masks,
                     warnings=warnings)
    outputs = _forward(model, inputs, hidden=not encoder_decoder)
    if not hooks.has_attentions(outputs, encoder_decoder):  # no output_attentions: find them with hooks
        return hooks.capture_module(model, tokenizer, text, target=target, ids=source.ids,
                                    target_ids=inputs.get("decoder_input_ids"), name=name)
    if encoder_decoder:
        attentions = {
            "encoder": _stack(outputs, "encoder_attentions", model),
            "decoder": _stack(outputs, "decoder_attentions", model),
            "cross": _stack(outputs, "cross_attentions", model),
        }
        masks = {"decoder": np.tril(np.ones((len(sequences["target"]),) * 2, dtype=bool))}
    else:
        attentions = {"self": _stack(outputs, "attentions", model)}
        masks = {"self": _causal_mask(len(sequences["input"]))} if _is_causal(model, attentions["self"]) else {}
    for kind, att in attentions.items():
        bad = ~np.isfinite(att)
        if bad.any():
            warnings.append(f"{int(bad.sum())} {kind} attention weights were NaN or infinite (shown as masked).")
    from .analysis.internals import internals_of

    internals = {} if encoder_decoder else internals_of(model, tokenizer, outputs)
    return Trace(model_name=name, sequences=sequences, attentions=attentions, masks=masks, warnings=warnings,
                 **internals)


class _Encoded:
    """Token ids of one text (or pair), with offsets, special flags and segments."""

    def __init__(self, enc: Any) -> None:
        self.ids = list(enc["input_ids"])
        self.offsets = [tuple(o) for o in enc["offset_mapping"]] if "offset_mapping" in enc else None
        self.special = [bool(s) for s in enc.get("special_tokens_mask", [0] * len(self.ids))]
        self.segment = _segments(enc, len(self.ids))
        self.token_type_ids = list(enc["token_type_ids"]) if "token_type_ids" in enc else None

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.ids)


def _segments(enc: Any, n: int) -> list[int]:
    """0/1 per token for text A/B; special tokens belong to the text they close ([SEP] after A is A)."""
    if "token_type_ids" in enc and any(enc["token_type_ids"]):
        return [int(t) for t in enc["token_type_ids"]]
    try:
        ids = enc.sequence_ids()
    except (AttributeError, ValueError):
        return [0] * n
    segment, current = [], 0
    for sid in ids:
        current = sid if sid is not None else current
        segment.append(int(current))
    return segment


def _encode(tokenizer: Any, text: str, limit: int | None, what: str, name: str,
            warnings: list[str], *, as_target: bool = False, pair: str | None = None) -> _Encoded:
    kwargs: dict[str, Any] = {"return_special_tokens_mask": True}
    if getattr(tokenizer, "is_fast", False):
        kwargs["return_offsets_mapping"] = True

    def run() -> _Encoded:
        if as_target:
            return _Encoded(tokenizer(text_target=text, **kwargs))
        return _Encoded(tokenizer(text, pair, **kwargs) if pair is not None else tokenizer(text, **kwargs))

    enc = run()
    if limit is not None and len(enc.ids) > limit:
        warnings.append(
            f"The {what} has {len(enc.ids)} tokens; {name} takes at most {limit}, so only the first {limit} are shown."
        )
        kwargs.update(truncation=True, max_length=limit)
        enc = run()
    if not enc.ids:
        raise EmptyTextError(f"The {what} gave no tokens. Give some text the tokenizer can read.")
    return enc


def _check_inputs(model: Any, max_tokens: Any, *texts: Any) -> None:
    """Refuse what is not a model, a max_tokens below 1, and text that is not valid Unicode."""
    if not callable(model):
        raise ModelLoadError(f"Expected a model (a torch.nn.Module), got {type(model).__name__}: pass a model object, "
                             "a hub id or a folder.")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise OptionError(f"max_tokens must be a whole number of at least 1, got {max_tokens!r}.")
    for text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadTextError(
                    f"The text has a character that is not valid Unicode (U+{ord(text[exc.start]):04X}, a lone "
                    f"surrogate, at position {exc.start}): remove it, or decode the text with errors='replace'."
                ) from None


def _position_limit(model: Any, tokenizer: Any, max_tokens: int | None) -> int | None:
    config = getattr(model, "config", None)
    limits = [getattr(config, a, None) for a in ("max_position_embeddings", "n_positions", "max_target_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    limits.append(max_tokens)
    real = [int(x) for x in limits if isinstance(x, (int, float)) and 0 < x < _NO_LIMIT]
    return min(real) if real else None


def _decoder_inputs(model: Any, target_ids: list[int]) -> list[int]:
    import torch

    labels = torch.tensor([target_ids])
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)[0].tolist()
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model.config, "pad_token_id", 0) or 0
    return [int(start)] + target_ids[:-1]


def _forward(model: Any, inputs: dict[str, Any], hidden: bool = False) -> Any:
    import torch

    device = _device(model)
    batch = {k: torch.tensor([v], device=device) for k, v in inputs.items()}
    extra = _hidden_options(model) if hidden else {}
    with model_failures(_model_name(model), len(inputs["input_ids"])), _eager_attention(model), \
            torch.inference_mode():
        return model(**batch, output_attentions=True, return_dict=True, **extra)


def _hidden_options(model: Any) -> dict[str, Any]:
    """Ask for hidden states where the model takes the option, and only the last position's
    logits where it can (the logit lens computes the others in bounded chunks)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return {}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out: dict[str, Any] = {}
    if "output_hidden_states" in params or takes_kwargs:
        out["output_hidden_states"] = True
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def _from_ids(tokenizer: Any, ids: list[int]) -> "_Encoded":
    """Given token ids as an encoding: no offsets, special where the tokenizer says so."""
    if not ids:
        raise EmptyTextError("No token ids given: give at least one.")
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [int(i) for i in ids]
    return _Encoded({"input_ids": ids, "special_tokens_mask": [int(i in special_ids) for i in ids]})


def _capture_streamed(model: Any, inputs: dict[str, Any], name: str) -> Any:
    """One pass under tx_magic's recording attention (see `tx_magic.streamed`), with a progress bar."""
    import torch

    from . import streamed

    ids = inputs["input_ids"]
    layers = getattr(memory.Shape.of(model), "layers", None)
    bar = _progress(layers, f"tx_magic: {name}, {len(ids)} tokens")
    device = _device(model)
    batch = {k: torch.tensor([v], device=device) for k, v in inputs.items()}
    try:
        with model_failures(name, len(ids)):
            try:
                with streamed.recording(model, len(ids), tile=streamed.tile_for(len(ids), memory.OVERVIEW_TILES),
                                        top_k=memory.TOP_K, token_ids=list(ids), on_layer=bar.update) as rec, \
                        torch.inference_mode():
                    model(**batch, **_last_logits_only(model))
            except NotImplementedError as exc:
                raise NoAttentionError(
                    f"{type(model).__name__} uses {exc}, which tx_magic cannot follow at this length; "
                    "pass max_tokens to capture a shorter text in full."
                ) from None
    finally:
        bar.close()
    return rec.result()


def _last_logits_only(model: Any) -> dict[str, Any]:
    """`logits_to_keep=1` where the model takes it: a streamed pass needs no vocabulary-wide logits per token
    (at 8192 tokens on SmolLM2 they would be 1.6 GB and a fifth of the pass's work)."""
    import inspect

    try:
        return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    except (TypeError, ValueError, AttributeError):
        return {}


def _progress(total: int | None, desc: str) -> Any:
    """A progress bar (tqdm, which transformers brings) that works in notebooks and terminals."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="layer", leave=False)


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Eager attention and eval mode for one pass; the model is put back as it was."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    was_training = bool(getattr(model, "training", False))
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    model.eval()
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)
        model.train(was_training)


def _stack(outputs: Any, field: str, model: Any) -> np.ndarray:
    layers = getattr(outputs, field, None)
    if layers is None and isinstance(outputs, dict):
        layers = outputs.get(field)
    layers = [a for a in (layers or ()) if a is not None]
    if not layers:
        raise NoAttentionError(
            f"{type(model).__name__} returned no attention weights ({field} is empty). "
            "It may not support output_attentions; try a model with standard attention layers."
        )
    import torch

    stacked = torch.stack([a[0].detach().float().cpu() for a in layers])
    return stacked.numpy().astype(np.float32, copy=False)


def _is_causal(model: Any, att: np.ndarray) -> bool:
    """Causal if the model says so, or if every weight above the diagonal is exactly zero."""
    config = getattr(model, "config", None)
    cls = type(model).__name__
    if getattr(config, "is_decoder", False) or "CausalLM" in cls or "LMHead" in cls:
        return True
    n = att.shape[-1]
    return n > 1 and att.shape[-2] == n and not np.triu(att, k=1).any()


def _causal_mask(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n), dtype=bool))


def _device(model: Any) -> Any:
    """Where inputs go: the input embedding's device, also for models spread with device_map."""
    from .hooks import input_device

    try:
        return input_device(model)
    except (StopIteration, AttributeError, TypeError):
        return "cpu"


def _model_name(model: Any) -> str:
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return path.rstrip("/").split("/")[-1] if path else type(model).__name__
