"""Hidden states per layer and token: how big each vector is and how much a layer turns it.

Row 0 is the embeddings, row l the output of layer l. ``norms[l, t]`` is the L2 norm of token
t's vector after layer l; ``cosines[l, t]`` its cosine similarity to the same token's vector
one row earlier (NaN in row 0, which has no earlier row). A cosine near 1 means the layer
barely changed the direction of that token's vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.internals import Internals


@dataclass(frozen=True)
class HiddenStats:
    """Per (row, token) norms and cosines; rows are embeddings then each layer."""

    #: float32 (layers + 1, tokens): L2 norm of each hidden vector.
    norms: np.ndarray
    #: float32 (layers + 1, tokens): cosine to the same token one row earlier; row 0 is NaN.
    cosines: np.ndarray
    #: The last row is after the model's final norm (transformers returns GPT-2's and Llama's so),
    #: so its norm and cosine reflect that norm too.
    last_normed: bool = False

    @property
    def layers(self) -> int:
        """Transformer layers (rows minus the embeddings row)."""
        return int(self.norms.shape[0]) - 1


def hidden_stats(hidden_states: Sequence[Any] | np.ndarray, last_normed: bool = False) -> HiddenStats:
    """Norms and cosines from a model's ``output_hidden_states`` (each (1, n, d) or (n, d))."""
    if len(hidden_states) == 0:
        raise ValueError("hidden_stats needs at least one hidden-state tensor")
    n = int(hidden_states[0].shape[-2])
    norms = np.zeros((len(hidden_states), n), dtype=np.float32)
    cosines = np.full((len(hidden_states), n), np.nan, dtype=np.float32)
    previous = None
    for i, state in enumerate(hidden_states):  # one row in float64 at a time: two rows held, not all of them
        h = _as_2d(state)
        norm = np.linalg.norm(h, axis=-1)
        norms[i] = norm
        if previous is not None:
            prev_h, prev_norm = previous
            dot = np.einsum("td,td->t", h, prev_h)
            with np.errstate(invalid="ignore", divide="ignore"):
                cosines[i] = dot / (norm * prev_norm)
        previous = (h, norm)
    return HiddenStats(norms=norms, cosines=cosines, last_normed=last_normed)


def _as_2d(h: Any) -> np.ndarray:
    """A (n, d) float64 numpy array from a torch tensor or array of shape (1, n, d) or (n, d)."""
    if hasattr(h, "detach"):
        h = h.detach().float().cpu().numpy()
    a = np.asarray(h, dtype=np.float64)
    if a.ndim == 3:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"a hidden state must be (1, tokens, dim) or (tokens, dim), got shape {a.shape}")
    return a


def hidden_of(internals: Internals) -> HiddenStats:
    """`HiddenStats` of a capture's hidden states."""
    return hidden_stats(internals.hidden_states, last_normed=internals.last_normed)
