"""`capture`: run a model once and record what it computed into a `Trace`, by the path that fits it.

- transformers models with their tokenizers: `tx_magic.capturing.hf` (output_attentions, or streamed
  for long inputs);
- images for ViT-style models: `tx_magic.capturing.images`;
- any other torch module, or any callable tokenizer: forward hooks, `tx_magic.capturing.modules`.

Objects of the libraries around transformers (TransformerLens, nnsight, sentence-transformers,
pipelines) are first unwrapped to the model inside them: `tx_magic.capturing.adapters`.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import BadTextError, ModelLoadError, OptionError, TxMagicError
from ..core.intervention import intervention_of
from ..core.trace import Trace
from .adapters import unwrap_model
from .hf import capture_transformers
from .images import capture_image, is_image_input
from .interventions import unsupported
from .models import is_transformers_model
from .modules import capture_module


def capture(model: Any, tokenizer: Any, text: str, *, target: str | None = None, pair: str | None = None,
            max_tokens: int | None = None, name: str | None = None, ids: list[int] | None = None,
            image: Any = None, ablate: Any = None, ablation: str = "zero", edit: Any = None) -> Trace:
    """Run `model` once on `text` (and `target` for encoder-decoder models) and return its `Trace`.

    `pair` is a second text encoded with the first as a sentence pair (``tokenizer(text, pair)``);
    each token's ``segment`` says which text it came from. Texts longer than the model takes
    (or than `max_tokens`) are truncated, with a warning kept in ``trace.warnings``.
    `ids` runs these token ids instead of encoding `text` (generation uses it).
    `image` (a PIL image, array or path) runs a ViT-style model with `tokenizer` its image processor.
    Any other torch module (or a transformers model that gives no attentions) is captured with
    forward hooks: see `tx_magic.capturing.hooks` for how a custom model reports its attention.
    A TransformerLens, nnsight, sentence-transformers or pipeline object runs the model inside it, with
    its own tokenizer when `tokenizer` is None (`tx_magic.capturing.adapters`).

    Interventions (transformers models, text inputs): `ablate` lists ``(layer, head)`` pairs whose output
    (each head's attention-weighted values, before the output projection) is replaced by zeros
    (``ablation="zero"``) or by its mean over the input's positions (``"mean"``); `edit` lists
    ``(layer, head, query, key, weight)``: that weight is set and the rest of its row rescaled to sum to 1
    (weight 0 blocks the key). Either may put the kind first (``("cross", layer, head)``). The trace is of
    the intervened run (attention, logits, hidden states); ``trace.intervention`` says what was done.
    """
    unwrapped = unwrap_model(model, tokenizer)
    model, tokenizer, name = unwrapped.model, unwrapped.tokenizer, name or unwrapped.name
    max_tokens = unwrapped.max_tokens if max_tokens is None else max_tokens
    check_inputs(model, max_tokens, text, pair, target)
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    intervention = intervention_of(ablate, ablation, edit, kind="encoder" if encoder_decoder else "self")
    if unwrapped.runner is not None:
        if intervention is not None:
            raise unsupported(model, f"a {unwrapped.source} model run by its own wrapper does not go through")
        if pair is not None or target is not None or ids is not None or image is not None:
            raise TxMagicError(f"A {unwrapped.source} model is run on one text here: leave out pair, target, ids "
                               "and image.")
        return unwrapped.runner(text, max_tokens, name)  # type: ignore[no-any-return]
    if image is not None or is_image_input(text, tokenizer):
        if intervention is not None:
            raise unsupported(model, "tx_magic does not open for image inputs yet")
        return capture_image(model, tokenizer, text if image is None else image, name=name)
    plain_tokenizer = not hasattr(tokenizer, "convert_ids_to_tokens")  # any callable (or None with ids)
    if not is_transformers_model(model) or plain_tokenizer:
        if intervention is not None:
            raise unsupported(model, "a model captured with forward hooks (any torch module, or a plain "
                                     "tokenizer) does not use")
        if pair is not None:
            raise TxMagicError("Sentence pairs need a transformers model and tokenizer; with this model, "
                               "put both texts in one string.")
        return capture_module(model, tokenizer, text, target=target, ids=ids, max_tokens=max_tokens, name=name)
    return capture_transformers(model, tokenizer, text, target=target, pair=pair, max_tokens=max_tokens, name=name,
                                ids=ids, intervention=intervention)


def check_inputs(model: Any, max_tokens: Any, *texts: Any) -> None:
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
