"""Next-token logits of a causal LM: the last position's kept exactly, any other on request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.internals import Internals


class NextTokenLogits:
    """Full-vocabulary logits after each position (what the model predicts comes next).

    ``last`` holds the last position's float32 logits (V,); `at` gives any position's,
    computed on request from the final hidden states (held by the capture, not copied).
    """

    def __init__(self, last: np.ndarray, compute: Callable[[int], np.ndarray] | None = None,
                 tokens: int | None = None) -> None:
        self.last = np.ascontiguousarray(last, dtype=np.float32).reshape(-1)
        self._compute = compute
        self.tokens = tokens if tokens is not None else 1

    @property
    def vocab_size(self) -> int:
        return int(self.last.shape[0])

    def at(self, position: int) -> np.ndarray:
        """float32 (V,) logits after token `position` (0-based; -1 or tokens-1 is the last)."""
        if position < 0:
            position += self.tokens
        if not 0 <= position < self.tokens:
            raise IndexError(f"position must be in 0..{self.tokens - 1}, got {position}")
        if position == self.tokens - 1:
            return self.last
        if self._compute is None:
            raise ValueError("this trace keeps only the last position's logits")
        return np.ascontiguousarray(self._compute(position), dtype=np.float32).reshape(-1)


def from_hidden(final_hidden: Any, unembed: Any, normed: bool, last: Any = None) -> NextTokenLogits:
    """Logits of every position of `final_hidden` ((1, n, d) tensor or (n, d) array) through
    `unembed`, lazily; `last` (the model's own logits after the last token) saves computing those."""
    import torch

    h = final_hidden[0] if final_hidden.ndim == 3 else final_hidden
    h = torch.from_numpy(h) if isinstance(h, np.ndarray) else h.detach()

    def compute(position: int) -> np.ndarray:
        return np.asarray(unembed.logits(h[position:position + 1], normed=normed)[0].cpu().numpy())

    n = int(h.shape[0])
    if last is None:
        last = compute(n - 1)
    elif hasattr(last, "detach"):
        last = last.detach().float().cpu().numpy()
    return NextTokenLogits(last, compute, tokens=n)


def logits_of(internals: Internals) -> NextTokenLogits | None:
    """Next-token logits of a capture's internals, or None without a readout (not a causal LM)."""
    if internals.readout is None:
        return None
    return from_hidden(internals.hidden_states[-1], internals.readout, internals.last_normed,
                       last=internals.last_logits)
