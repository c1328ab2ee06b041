"""The Python API behind the magic: `explain` runs a model and returns the widget."""

from __future__ import annotations

import warnings
from typing import Any

from .analysis.patching import Patching
from .analysis.patching import patch as patch_runs
from .capturing import capture, load_model
from .capturing.adapters import trace_of, unwrap_model
from .capturing.generate import capture_generation
from .capturing.modules import token_ids
from .core.errors import ModelLoadError, OptionError
from .core.intervention import Intervention
from .core.trace import Trace
from .widget import AttentionWidget


def resolve_model(model: Any = None, tokenizer: Any = None, *,
                  need_tokenizer: bool = True) -> tuple[Any, Any, str | None]:
    """(model, tokenizer, display name) from a name/folder/None (loaded, cached) or live objects; a
    TransformerLens, nnsight, sentence-transformers or pipeline object brings its own tokenizer."""
    if model is None or isinstance(model, str):
        loaded = load_model(model)
        return loaded.model, tokenizer or loaded.tokenizer, loaded.name
    if tokenizer is None:
        tokenizer = unwrap_model(model).tokenizer
    if tokenizer is None and need_tokenizer:
        raise ModelLoadError(
            f"Got a {type(model).__name__} object but no tokenizer: pass tokenizer=... (in the magic: -t NAME)."
        )
    return model, tokenizer, None


def explain(model: Any = None, tokenizer: Any = None, text: str = "", *, target: str | None = None,
            pair: str | None = None, layer: int = 0, head: int | None = None,
            max_tokens: int | None = None, generate: int | None = None, sample: bool = False,
            temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
            seed: int | None = None, ids: Any = None, image: Any = None, weighting: str = "raw", ablate: Any = None,
            ablation: str = "zero", edit: Any = None, patch: str | None = None, answer: Any = None, wrong: Any = None,
            by: str = "head") -> AttentionWidget:
    """Run `model` on `text` and return the interactive attention widget.

    `model` is a hub id, a local folder, a loaded model object (with its `tokenizer`), or
    None for the embedded default (all-MiniLM-L6-v2). It may also be a TransformerLens
    `TransformerBridge`, an nnsight `LanguageModel`, a sentence-transformers `SentenceTransformer` or
    `CrossEncoder`, or a transformers pipeline: the model inside runs, with its own tokenizer by default.
    `target` is the decoder text of an encoder-decoder model; `pair` a second text encoded with `text`
    as a sentence pair. Works in any notebook front end and outside IPython.

    `generate=N` (causal LMs) first continues `text` by up to N tokens, greedily, or sampled
    with `sample=True` (`temperature`, `top_k`, `top_p`, `seed`); the widget then replays the steps.

    `model` may be any torch.nn.Module, with any callable `tokenizer` giving token ids (see
    `tx_magic.capturing.hooks`); `ids` runs these token ids instead of a text (the tokenizer may then be None);
    `image` (or a PIL image / array / path in place of `text`, with an image processor as
    `tokenizer`) runs a ViT-style model on it. `weighting="value"` starts with value-weighted views
    (Kobayashi et al. 2020; `AttentionWidget.weighting`).

    Interventions (transformers models): `ablate`, `ablation` and `edit` as in `tx_magic.capture`; the widget
    shows the intervened run and reruns the model when a head is Alt-clicked or a weight edited.
    `patch="corrupted text"` (same token length) adds an Effects tab: `tx_magic.patch` of every head
    (`by`: "head", "layer" or "position"), exact and gradient side by side, with `answer` / `wrong`.
    """
    intervening = bool(ablate) or bool(edit) or patch is not None
    if generate is not None:
        if intervening:
            raise OptionError("ablate, edit and patch work on one pass of a text, not with generate: leave one out.")
        mod, tok, name = resolve_model(model, tokenizer)
        trace = capture_generation(mod, tok, text, generate, name=name, sample=sample, temperature=temperature,
                                   top_k=top_k, top_p=top_p, seed=seed)
        return show(trace, layer=layer, head=head, weighting=weighting)
    mod, tok, name = resolve_model(model, tokenizer, need_tokenizer=ids is None)
    run_ids = token_ids(ids, "ids") if ids is not None else None

    def rerun(intervention: Intervention | None) -> Trace:
        done = intervention or Intervention()
        return capture(mod, tok, text, target=target, pair=pair, max_tokens=max_tokens, name=name, ids=run_ids,
                       image=image, ablate=done.ablate, ablation=done.ablation, edit=done.edit)

    trace = capture(mod, tok, text, target=target, pair=pair, max_tokens=max_tokens, name=name, ids=run_ids,
                    image=image, ablate=ablate, ablation=ablation, edit=edit)
    results: list[Patching] = []
    if patch is not None:
        results = [patch_runs(mod, tok, text, patch, answer=answer, wrong=wrong, by=by, method=method,
                              target=target, max_tokens=max_tokens) for method in ("exact", "gradient")]
    # A transformers model captured in full (its trace can replay it) can be rerun with interventions.
    reruns = trace.replay is not None and trace.image is None and not any(trace.is_streamed(k) for k in trace.kinds)
    return show(trace, layer=layer, head=head, weighting=weighting, rerun=rerun if reruns else None,
                patching=results)


def capture_text(model: Any = None, tokenizer: Any = None, text: str = "", *, target: str | None = None,
                 pair: str | None = None, max_tokens: int | None = None, ids: Any = None,
                 image: Any = None) -> Trace:
    """`capture` that also accepts a model name or None (the default model)."""
    mod, tok, name = resolve_model(model, tokenizer, need_tokenizer=ids is None)
    if ids is not None:
        ids = token_ids(ids, "ids")
    return capture(mod, tok, text, target=target, pair=pair, max_tokens=max_tokens, name=name, ids=ids, image=image)


def show(trace: Any, tokens: Any = None, *, kind: str | None = None, layer: int = 0,
         head: int | None = None, name: str = "attention arrays", weighting: str = "raw", patching: Any = (),
         rerun: Any = None) -> AttentionWidget:
    """The widget for an existing `Trace`, or for attention arrays from any framework.

    Arrays (numpy, torch, JAX, TensorFlow...) are (layers, heads, q, k), (heads, q, k), (q, k), a
    list per layer, or a dict per kind with `tokens` per sequence: see `tx_magic.capturing.arrays`. Weights
    that are not probabilities (NaN, negative, rows not summing to 1) are shown with a warning.

    Also: a TransformerLens `ActivationCache` (every ``blocks.{i}.attn.hook_pattern``; `tokens` may then
    be left out, or be a text or token ids, read with the cache's model), and transformers model
    outputs (``attentions``, or ``encoder_attentions`` / ``decoder_attentions`` / ``cross_attentions``).
    `patching`: `tx_magic.patch` results of this input for the Effects tab; `rerun`: a function of an
    `Intervention` giving that run's trace, for widgets that rerun (`explain` passes one).
    """
    if not isinstance(trace, Trace):
        trace = trace_of(trace, tokens, name=name)
        for warning in trace.warnings:
            warnings.warn(f"tx_magic: {warning}", stacklevel=2)
    elif tokens is not None:
        raise TypeError("show(trace) takes no tokens: a Trace carries its own.")
    return AttentionWidget(trace, kind=kind, layer=layer, head=head, weighting=weighting, patching=patching,
                           rerun=rerun)
