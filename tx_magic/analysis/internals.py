"""What a capture keeps from inside a model besides attention: hidden-state statistics, the
logit lens, next-token logits and the vocabulary strings the renderer shows them with."""

from __future__ import annotations

from typing import Any

from .hidden import hidden_stats
from .lens import find_unembedding, hidden_array, last_is_normed, logit_lens, vocab_strings
from .nexttoken import from_hidden


def internals_of(model: Any, tokenizer: Any, outputs: Any) -> dict[str, Any]:
    """`Trace` fields (``hidden``, ``lens``, ``logits``, ``vocab``) from one forward pass's outputs.

    Empty when the model returned no hidden states; ``lens`` and ``logits`` only for causal
    LMs whose final norm and unembedding tx_magic finds (see `tx_magic.analysis.lens`).
    Cheap: hidden-state statistics and the last position's logits are computed now; the lens
    keeps the hidden states and computes positions when asked (`LogitLens.top`).
    """
    hidden = getattr(outputs, "hidden_states", None)
    if not hidden:
        return {}
    unembed = find_unembedding(model)
    logits = getattr(outputs, "logits", None)
    if unembed is None or logits is None or logits.dim() != 3 or logits.shape[-1] != unembed.vocab_size:
        return {"hidden": hidden_stats(hidden)}
    normed = last_is_normed(hidden, unembed, logits[0, -1])
    states = hidden_array(hidden)
    return {"hidden": hidden_stats(states, last_normed=normed),
            "lens": logit_lens(states, unembed, last_normed=normed),
            "logits": from_hidden(states[-1], unembed, normed, last=logits[0, -1]),
            "vocab": vocab_strings(tokenizer, unembed.vocab_size)}
