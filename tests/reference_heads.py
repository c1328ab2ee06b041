"""An independent implementation of head interventions, written from the definitions with plain forward
hooks (no tx_magic code): a head's output is its slice of the output projection's input, so ablating,
patching or probing a head edits that slice in a `register_forward_pre_hook` on the projection. One
unbatched run per question, the model's own attention implementation."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Edit = Callable[[int, torch.Tensor], torch.Tensor]


def projections(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The output projection of every self-attention layer (an encoder-decoder's encoder)."""
    if hasattr(model, "transformer"):  # GPT-2
        return [block.attn.c_proj for block in model.transformer.h]
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):  # BERT
        return [layer.attention.output.dense for layer in model.encoder.layer]
    if hasattr(model, "model") and hasattr(model.model, "encoder"):  # BART
        return [layer.self_attn.out_proj for layer in model.model.encoder.layers]
    return [layer.self_attn.o_proj for layer in model.model.layers]  # Llama


def head_size(model: torch.nn.Module) -> int:
    c = model.config
    heads = getattr(c, "encoder_attention_heads", None) or c.num_attention_heads
    return (getattr(c, "d_model", None) or c.hidden_size) // heads


def run(model: torch.nn.Module, ids: torch.Tensor, edit: Edit | None = None, *, target: torch.Tensor | None = None,
        grad: bool = False) -> object:
    """One run with `edit(layer, projection input) -> new input` applied at every layer."""
    handles = []
    if edit is not None:
        for layer, proj in enumerate(projections(model)):
            handles.append(proj.register_forward_pre_hook(lambda _m, args, layer=layer: (edit(layer, args[0]),)))
    try:
        extra = {} if target is None else {"decoder_input_ids": target}
        with torch.set_grad_enabled(grad):
            return model(ids, **extra)
    finally:
        for h in handles:
            h.remove()


def head_inputs(model: torch.nn.Module, ids: torch.Tensor, target: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Each layer's projection input (1, n, H*d): every head's output side by side."""
    seen: list[torch.Tensor] = []
    run(model, ids, lambda _layer, x: seen.append(x.detach().clone()) or x, target=target)
    return seen


def readout(model: torch.nn.Module, out: object, clean_pooled: torch.Tensor | None = None) -> torch.Tensor:
    """The last position's logits, or for an encoder the mean-pooled output (cosine to `clean_pooled`)."""
    if getattr(out, "logits", None) is not None:
        return out.logits[0, -1]
    pooled = out.last_hidden_state[0].mean(0)
    return pooled if clean_pooled is None else F.cosine_similarity(pooled, clean_pooled, dim=0)


def replace_slice(x: torch.Tensor, source: torch.Tensor, heads: list[int] | None, positions: list[int] | None,
                  d: int) -> torch.Tensor:
    x = x.clone()
    for h in heads if heads is not None else range(x.shape[-1] // d):
        cols = slice(h * d, (h + 1) * d)
        if positions is None:
            x[..., cols] = source[..., cols]
        else:
            x[:, positions, cols] = source[:, positions, cols]
    return x
