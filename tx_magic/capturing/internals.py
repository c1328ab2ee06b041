"""What a capture keeps from inside a model besides attention (`tx_magic.core.internals.Internals`):
the hidden states, and for causal LMs the final norm and unembedding, the last position's logits
and the vocabulary's display strings. The analysis layer computes statistics and the lens from them."""

from __future__ import annotations

from typing import Any

from ..core.internals import Internals
from .readout import find_unembedding, hidden_array, last_is_normed
from .vocab import vocab_strings


def internals_of(model: Any, tokenizer: Any, outputs: Any) -> Internals | None:
    """`Internals` from one forward pass's outputs, or None when the model returned no hidden states.

    The readout (lens, next-token logits) only for causal LMs whose final norm and unembedding
    tx_magic finds (see `tx_magic.capturing.readout`). Cheap: the hidden states are copied as
    float32; everything else is computed when first asked for.
    """
    hidden = getattr(outputs, "hidden_states", None)
    if not hidden:
        return None
    states = hidden_array(hidden)
    unembed = find_unembedding(model)
    logits = getattr(outputs, "logits", None)
    if unembed is None or logits is None or logits.dim() != 3 or logits.shape[-1] != unembed.vocab_size:
        return Internals(hidden_states=states)
    last = logits[0, -1]
    return Internals(hidden_states=states, last_normed=last_is_normed(hidden, unembed, last), readout=unembed,
                     last_logits=last.detach().float().cpu().numpy(),
                     vocab=vocab_strings(tokenizer, unembed.vocab_size))
