"""Generate tokens with a causal LM, then capture the whole sequence in one pass.

With causal attention, each token's attention row in the one-pass capture is exactly what the
model computed at the step that produced the next token (later tokens are masked out), so the
widget can replay the steps: at step s it focuses token ``prompt + s - 1``, the last one the
model read before choosing token ``prompt + s``.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import EmptyTextError, TxMagicError
from ..core.generation import Generation
from ..core.trace import Trace
from .adapters import unwrap_model
from .dispatch import capture
from .model_state import evaluating

#: Most tokens `--generate` makes in one call.
MAX_STEPS = 512


class GenerationError(TxMagicError, ValueError):
    """Generation was asked of a model or with settings that cannot do it."""


def generate_ids(model: Any, tokenizer: Any, prompt: str, steps: int, *, sample: bool = False,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None) -> tuple[list[int], list[int]]:
    """(prompt ids, generated ids): up to `steps` tokens (fewer when the model ends the text),
    greedy unless `sample` (then with `temperature`, `top_k`, `top_p` and a `seed` for repeatability)."""
    import torch

    _check(model, steps, temperature, top_p)
    if prompt is None or not str(prompt).strip():
        raise EmptyTextError("Nothing to continue: the prompt is empty. Give some text, "
                             "e.g. `%explain --generate 20 Once upon a time`.")
    prompt_ids = [int(i) for i in tokenizer(str(prompt))["input_ids"]]
    if not prompt_ids:
        raise EmptyTextError("The prompt gave no tokens. Give some text the tokenizer can read.")
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    options: dict[str, Any] = {"max_new_tokens": steps, "do_sample": sample,
                               "attention_mask": torch.ones_like(ids)}
    if sample:
        options.update(temperature=temperature, top_k=top_k or 0, top_p=1.0 if top_p is None else top_p)
        if seed is not None:
            torch.manual_seed(seed)
    else:  # greedy: no sampling settings, so the model's generation config cannot warn about them
        options.update(temperature=None, top_k=None, top_p=None)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is not None:
        options["pad_token_id"] = pad
    with evaluating(model), torch.inference_mode():
        out = model.generate(ids, **options)
    return prompt_ids, [int(i) for i in out[0, len(prompt_ids):].tolist()]


def capture_generation(model: Any, tokenizer: Any, prompt: str, steps: int, *, name: str | None = None,
                       sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                       top_p: float | None = None, seed: int | None = None) -> Trace:
    """Generate up to `steps` tokens after `prompt`, capture prompt + generated tokens in one
    pass, and mark the generated ones (``trace.generation``). A pipeline, nnsight or TransformerLens bridge
    object generates with the transformers model inside it."""
    unwrapped = unwrap_model(model, tokenizer)
    model, tokenizer, name = unwrapped.model, unwrapped.tokenizer, name or unwrapped.name
    prompt_ids, new_ids = generate_ids(model, tokenizer, prompt, steps, sample=sample, temperature=temperature,
                                       top_k=top_k, top_p=top_p, seed=seed)
    trace = capture(model, tokenizer, prompt, ids=prompt_ids + new_ids, name=name)
    trace.generation = Generation(prompt_length=len(prompt_ids), new_ids=tuple(new_ids), sample=sample,
                                  temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    if len(new_ids) < steps:
        trace.warnings.append(f"The model ended the text after {len(new_ids)} of {steps} tokens.")
    return trace


def _check(model: Any, steps: int, temperature: float, top_p: float | None) -> None:
    config = getattr(model, "config", None)
    if not hasattr(model, "generate") or getattr(config, "is_encoder_decoder", False):
        raise GenerationError(
            f"{type(model).__name__} cannot generate here: --generate needs a causal LM (GPT-2, Llama, SmolLM2...)."
        )
    cls = type(model).__name__
    if not ("CausalLM" in cls or "LMHead" in cls or getattr(config, "is_decoder", False)):
        raise GenerationError(
            f"{cls} is not a causal language model: --generate needs one (e.g. -m SmolLM2 .gguf, GPT-2, Llama)."
        )
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise GenerationError(f"--generate takes 1..{MAX_STEPS} tokens, got {steps}.")
    if temperature <= 0:
        raise GenerationError(f"temperature must be above 0, got {temperature}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise GenerationError(f"top_p must be in (0, 1], got {top_p}.")
