"""Capture one forward pass of a transformers model into a `Trace`.

transformers 5 defaults to sdpa, which returns no attention weights, so capture switches
the model to its own eager attention for the pass (exactly the model's probabilities) and
switches it back afterwards, with its train/eval mode as it was. Outputs are read by name.
Long inputs are captured streamed (`tx_magic.capturing.streamed`) when the memory guard says so.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.attention import DenseAttention
from ..core.checks import causal_mask, looks_causal
from ..core.errors import EmptyTextError, MissingTargetError, NoAttentionError, model_failures
from ..core.intervention import Intervention
from ..core.tokens import Tokens
from ..core.trace import Trace
from . import dense, memory, streamed
from .display import display_tokens
from .encode import decoder_inputs, encode, from_ids, position_limit
from .instrument import supports
from .internals import internals_of
from .interventions import Layout, check_intervention, instruments_for, intervening, unsupported
from .model_state import eager_attention
from .models import input_device, model_name
from .modules import capture_module
from .replay import ModelReplay


@dataclass
class Inputs:
    """What one run feeds the model, and the tokens it shows."""

    batch: dict[str, Any]
    sequences: dict[str, Tokens]
    warnings: list[str] = field(default_factory=list)

    @property
    def encoder_decoder(self) -> bool:
        return "decoder_input_ids" in self.batch


def capture_transformers(model: Any, tokenizer: Any, text: str, *, target: str | None = None,
                         pair: str | None = None, max_tokens: int | None = None, name: str | None = None,
                         ids: list[int] | None = None, intervention: Intervention | None = None) -> Trace:
    """`tx_magic.capture` for a transformers model and tokenizer (see its docstring); with `intervention`,
    the run goes through tx_magic's instrumented attention and the trace is of the intervened run."""
    name = name or model_name(model)
    inputs = prepare_inputs(model, tokenizer, text, target=target, pair=pair, max_tokens=max_tokens, name=name,
                            ids=ids)
    n = len(inputs.batch["input_ids"])
    decoder = inputs.batch.get("decoder_input_ids")
    if intervention is not None:
        check_intervention(intervention, Layout.of(model, name), kind_lengths(inputs))
    # One pass writing the weights once (`tx_magic.capturing.dense`); an intervened run goes through the
    # instrumented eager attention instead (its instruments replace weights and outputs).
    dense_ok = intervention is None and not inputs.encoder_decoder and supports(model)
    plan = memory.plan_capture(model, n, streamable=not inputs.encoder_decoder,
                               target=len(decoder) if decoder is not None else None, copies=1 if dense_ok else 2)
    if plan.mode == memory.STREAMED:
        if intervention is not None:
            raise unsupported(model, f"a streamed capture ({n} tokens, kept reduced) does not go through in full; "
                                     "pass max_tokens to intervene on a shorter text")
        return _streamed_trace(model, inputs, name)
    recorded = _dense_forward(model, inputs.batch, name) if dense_ok else None
    if recorded is not None:
        outputs, recorder = recorded
        array = recorder.array
        assert array is not None  # a complete recorder holds its array
        masks = {"self": causal_mask(n)} if recorder.causal or _is_causal(model, array) else {}
        return Trace(model_name=name, sequences=inputs.sequences, masks=masks, warnings=inputs.warnings,
                     attentions={"self": DenseAttention(array, softmax_rows=recorder.finite)},
                     internals=internals_of(model, tokenizer, outputs), replay=_replay(model, inputs, name))
    if dense_ok and memory.plan_capture(model, n, streamable=True).mode == memory.STREAMED:
        return _streamed_trace(model, inputs, name)  # output_attentions would hold every weight twice
    outputs = _forward(model, inputs.batch, hidden=not inputs.encoder_decoder, intervention=intervention, name=name)
    if not has_attentions(outputs, inputs.encoder_decoder):  # no output_attentions: find them with hooks
        hooked = capture_module(model, tokenizer, text, target=target, ids=inputs.batch["input_ids"],
                                target_ids=decoder, name=name)
        hooked.warnings[:0] = [w for w in inputs.warnings if w not in hooked.warnings]  # truncation, said once
        return hooked
    if inputs.encoder_decoder:
        attentions = {kind: _stack(outputs, f"{kind}_attentions", model) for kind in ("encoder", "decoder", "cross")}
        masks = {"decoder": causal_mask(len(inputs.sequences["target"]))}
    else:
        attentions = {"self": _stack(outputs, "attentions", model)}
        masks = {"self": causal_mask(n)} if _is_causal(model, attentions["self"]) else {}
    internals = None if inputs.encoder_decoder else internals_of(model, tokenizer, outputs)
    return Trace(model_name=name, sequences=inputs.sequences, attentions=attentions, masks=masks,
                 warnings=inputs.warnings, internals=internals, intervention=intervention,
                 replay=_replay(model, inputs, name, intervention))


def kind_lengths(inputs: Inputs) -> dict[str, tuple[int, int]]:
    """(queries, keys) of each attention kind of these inputs."""
    if not inputs.encoder_decoder:
        n = len(inputs.batch["input_ids"])
        return {"self": (n, n)}
    s, t = len(inputs.batch["input_ids"]), len(inputs.batch["decoder_input_ids"])
    return {"encoder": (s, s), "decoder": (t, t), "cross": (t, s)}


def prepare_inputs(model: Any, tokenizer: Any, text: str, *, target: str | None = None, pair: str | None = None,
                   max_tokens: int | None = None, name: str, ids: list[int] | None = None) -> Inputs:
    """Encode `text` (with `pair`, or a `target` for encoder-decoders), or take `ids`, truncated to what
    the model takes (with a warning); the display tokens alongside."""
    if ids is None and (text is None or not str(text).strip()):
        raise EmptyTextError("Nothing to explain: the text is empty. Give some text, e.g. `%explain The cat sat.`")
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    if encoder_decoder and (target is None or not str(target).strip()):
        raise MissingTargetError(
            f"{name} is an encoder-decoder model: give a target too "
            "(in %%explain: the source, a line `---`, then the target; in Python: target=...)."
        )
    if pair is not None and not str(pair).strip():
        raise EmptyTextError("The second text of the pair is empty: give some text, or leave the pair out.")
    limit = position_limit(model, tokenizer, max_tokens)
    warnings: list[str] = []
    source = encode(tokenizer, str(text), limit, "text", name, warnings, pair=pair) if ids is None \
        else from_ids(tokenizer, ids)
    texts = (str(text), str(pair)) if pair is not None else str(text)
    batch: dict[str, Any] = {"input_ids": source.ids, "attention_mask": source.attention_mask}
    if source.token_type_ids is not None and any(source.token_type_ids):
        batch["token_type_ids"] = source.token_type_ids  # text B of a BERT-style pair
    shown = display_tokens(tokenizer, source.ids, text=texts, offsets=source.offsets, special=source.special,
                           segment=source.segment)
    if not encoder_decoder:
        return Inputs(batch, {"input": shown}, warnings)
    tgt = encode(tokenizer, str(target), limit, "target", name, warnings, as_target=True)
    dec_ids = decoder_inputs(model, tgt.ids)
    # The decoder reads [start] + target[:-1]: shift the target's spans along with it.
    dec_offsets = [(0, 0), *tgt.offsets[:-1]] if tgt.offsets else None
    batch["decoder_input_ids"] = dec_ids
    target_tokens = display_tokens(tokenizer, dec_ids, text=str(target), offsets=dec_offsets,
                                   special=[True, *tgt.special[:-1]])
    return Inputs(batch, {"source": shown, "target": target_tokens}, warnings)


def _streamed_trace(model: Any, inputs: Inputs, name: str) -> Trace:
    n = len(inputs.batch["input_ids"])
    reduced = _capture_streamed(model, inputs.batch, name)
    inputs.warnings.append(
        f"{n} tokens: attention is kept reduced (overview max-pooled over {reduced.tile}x{reduced.tile}-token "
        f"tiles, the top {reduced.top_values.shape[-1]} keys of each token, exact values on request)."
    )
    masks = {"self": causal_mask(n)} if reduced.causal else {}
    return Trace(model_name=name, sequences=inputs.sequences, attentions={"self": reduced}, masks=masks,
                 warnings=inputs.warnings)


def _replay(model: Any, inputs: Inputs, name: str, intervention: Intervention | None = None) -> ModelReplay | None:
    """The model and batch, for the analyses that run the model once more (`tx_magic.core.replay`); an
    intervened run is replayed with the same intervention, so its analyses are of the run shown."""
    if not supports(model):
        return None
    instruments = () if intervention is None else tuple(instruments_for(intervention, Layout.of(model, name)))
    return ModelReplay(model, inputs.batch, name, instruments)


def _dense_forward(model: Any, inputs: dict[str, Any], name: str) -> tuple[Any, dense.DenseRecorder] | None:
    """One pass writing every layer's weights into one array (`tx_magic.capturing.dense`): the outputs and
    the recorder, or None when the model's attention cannot be recorded so (then output_attentions is used)."""
    import torch

    shape = memory.Shape.of(model)
    if shape is None:
        return None
    n = len(inputs["input_ids"])
    batch = _batch(model, inputs)
    with contextlib.ExitStack() as stack:
        try:
            recorder = stack.enter_context(dense.recording(model, shape.layers, n))
        except (ValueError, NotImplementedError, AttributeError, KeyError):  # takes no registered attention function
            return None
        stack.enter_context(model_failures(name, n))
        stack.enter_context(torch.inference_mode())
        outputs = model(**batch, return_dict=True, **_pass_options(model, hidden=True, cache=False))
    return (outputs, recorder) if recorder.complete else None


def _forward(model: Any, inputs: dict[str, Any], hidden: bool = False, intervention: Intervention | None = None,
             name: str | None = None) -> Any:
    import torch

    batch = _batch(model, inputs)
    extra = _pass_options(model, hidden=True) if hidden else {}
    # With an intervention: tx_magic's instrumented eager attention (bit-identical to eager when nothing is done).
    attention = eager_attention(model) if intervention is None else \
        intervening(model, *instruments_for(intervention, Layout.of(model, name or model_name(model))))
    with model_failures(model_name(model), len(inputs["input_ids"])), attention, torch.inference_mode():
        return model(**batch, output_attentions=True, return_dict=True, **extra)


def _pass_options(model: Any, *, hidden: bool = False, cache: bool = True) -> dict[str, Any]:
    """The options of one pass that `model` takes: only the last position's logits (the logit lens
    computes the others in bounded chunks; at 8192 tokens on SmolLM2 all of them would be 1.6 GB),
    hidden states if `hidden`, and no key/value cache (a copy of every layer's) unless `cache`."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return {}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out: dict[str, Any] = {}
    if hidden and ("output_hidden_states" in params or takes_kwargs):
        out["output_hidden_states"] = True
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    if not cache and "use_cache" in params:
        out["use_cache"] = False
    return out


def _batch(model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` (lists of ids per input name, one sequence) as a batch of one on the model's input device."""
    import torch

    device = _device(model)
    return {k: torch.tensor([v], device=device) for k, v in inputs.items()}


def _capture_streamed(model: Any, inputs: dict[str, Any], name: str) -> Any:
    """One pass under tx_magic's recording attention (see `tx_magic.streamed`), with a progress bar."""
    import torch

    ids = inputs["input_ids"]
    layers = getattr(memory.Shape.of(model), "layers", None)
    bar = _progress(layers, f"tx_magic: {name}, {len(ids)} tokens")
    batch = _batch(model, inputs)
    try:
        with model_failures(name, len(ids)):
            try:
                with streamed.recording(model, len(ids), tile=streamed.tile_for(len(ids), memory.OVERVIEW_TILES),
                                        top_k=memory.TOP_K, token_ids=list(ids), on_layer=bar.update) as rec, \
                        torch.inference_mode():
                    model(**batch, **_pass_options(model, cache=False))  # no key/value cache: a copy of every layer's
            except NotImplementedError as exc:
                raise NoAttentionError(
                    f"{type(model).__name__} uses {exc}, which tx_magic cannot follow at this length; "
                    "pass max_tokens to capture a shorter text in full."
                ) from None
    finally:
        bar.close()
    return rec.result()


def _progress(total: int | None, desc: str) -> Any:
    """A progress bar (tqdm, which transformers brings) that works in notebooks and terminals."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="layer", leave=False)


def _stack(outputs: Any, name: str, model: Any) -> np.ndarray:
    layers = getattr(outputs, name, None)
    if layers is None and isinstance(outputs, dict):
        layers = outputs.get(name)
    layers = [a for a in (layers or ()) if a is not None]
    if not layers:
        raise NoAttentionError(
            f"{type(model).__name__} returned no attention weights ({name} is empty). "
            "It may not support output_attentions; try a model with standard attention layers."
        )
    import torch

    stacked = torch.stack([a[0].detach().float().cpu() for a in layers])
    return stacked.numpy().astype(np.float32, copy=False)


def _is_causal(model: Any, att: np.ndarray) -> bool:
    """Causal if the model says so, or if every weight above the diagonal is exactly zero."""
    config = getattr(model, "config", None)
    cls = type(model).__name__
    return bool(getattr(config, "is_decoder", False) or "CausalLM" in cls or "LMHead" in cls) or looks_causal(att)


def _device(model: Any) -> Any:
    """Where inputs go: the input embedding's device, also for models spread with device_map."""
    try:
        return input_device(model)
    except (StopIteration, AttributeError, TypeError):
        return "cpu"


def has_attentions(outputs: Any, encoder_decoder: bool) -> bool:
    """Whether a transformers model's outputs hold attention weights (output_attentions worked)."""
    fields = ("encoder_attentions", "decoder_attentions", "cross_attentions") if encoder_decoder else ("attentions",)
    for name in fields:
        value = getattr(outputs, name, None)
        if value is None and isinstance(outputs, dict):
            value = outputs.get(name)
        if not [a for a in (value or ()) if a is not None]:
            return False
    return True


