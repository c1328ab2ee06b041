"""What a capture keeps from inside a model besides attention, as plain data.

The analysis layer turns it into hidden-state statistics, the logit lens and next-token logits
(`Trace.hidden`, `Trace.lens`, `Trace.logits`) when they are first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Readout(Protocol):
    """A causal LM's final norm and unembedding, applied to hidden states (the model's own modules)."""

    @property
    def vocab_size(self) -> int: ...

    def normed(self, hidden: Any) -> Any:
        """Hidden states (torch, any leading shape) through the final norm."""

    def logits(self, hidden: Any, *, normed: bool = False, ids: Any = None) -> Any:
        """Logits (torch, float32) of hidden states (n, d); `normed`: the final norm was applied already;
        `ids`: only these vocabulary entries."""


@dataclass
class Internals:
    """Hidden states of one run, and how to read them as next-token predictions."""

    #: float32 (layers + 1, tokens, width): row 0 the embeddings, row l the output of layer l.
    hidden_states: np.ndarray
    #: The last row is after the model's final norm (transformers returns GPT-2's and Llama's so).
    last_normed: bool = False
    #: Causal LMs: the final norm and unembedding (None for encoders).
    readout: Readout | None = None
    #: float32 (V,): the model's own logits after the last token (None without a readout).
    last_logits: np.ndarray | None = None
    #: Display string of every token id (with a readout).
    vocab: tuple[str, ...] | None = None
