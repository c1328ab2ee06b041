"""The logit lens (nostalgebraist 2020): read each layer's hidden state as a prediction.

Each row's hidden state goes through the model's own final norm and unembedding (``lm_head``),
as if the layers above it were skipped; the top-k tokens and their probabilities (softmax
over the whole vocabulary) are kept per row and position. Row 0 is the embeddings, the last
row the model's real output.

Computed on demand: a capture keeps the hidden states and a handle on the final norm and
unembedding (`LogitLens`), and `LogitLens.top` computes the positions asked for (the widget
asks for the ones its lens tab shows), caching them. Each position costs rows x vocabulary x
width multiply-adds (SmolLM2: 31 x 49152 x 576 = 0.9 G), which is why none is computed at capture.
At most about `CHUNK_VALUES` logits exist at once (49k vocab x 4096 positions is never materialised).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capturing.readout import hidden_array
from ..core.internals import Internals, Readout

#: Logits held at once while computing the lens (float32): 8M values = 32 MB.
CHUNK_VALUES = 8 * 1024 * 1024
#: Top tokens kept per row and position.
TOP_K = 5




@dataclass(frozen=True)
class LensTop:
    """The lens at some positions: top-k tokens per row (embeddings, then each layer) and position."""

    #: Positions covered, in the order of axis 1 of `ids` and `probs`.
    positions: tuple[int, ...]
    #: int32 (layers + 1, len(positions), k): token ids, most probable first.
    ids: np.ndarray
    #: float32 (layers + 1, len(positions), k): their probabilities.
    probs: np.ndarray


class LogitLens:
    """The logit lens of one capture, computed on demand and cached per position.

    Holds the hidden states as float32 numpy (layers + 1, tokens, width): 4 x that many bytes
    (SmolLM2-135M at 512 tokens: 31 x 512 x 576 x 4 = 37 MB), plus a handle on the model's final
    norm and unembedding (the model's own modules, not copies). ``trace.lens.top([3, 4])`` gives
    positions 3 and 4; ``trace.lens.top()`` every position (costly for long inputs, see the module).
    """

    def __init__(self, hidden: np.ndarray, unembed: Readout, *, last_normed: bool, k: int = TOP_K,
                 chunk_values: int = CHUNK_VALUES) -> None:
        if hidden.ndim != 3:
            raise ValueError(f"LogitLens needs hidden states (rows, tokens, width), got shape {hidden.shape}")
        self.hidden = np.ascontiguousarray(hidden, dtype=np.float32)
        self.unembed = unembed
        self.last_normed = last_normed
        self.k = min(k, unembed.vocab_size)
        self.chunk_values = chunk_values
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def layers(self) -> int:
        """Transformer layers (rows minus the embeddings row)."""
        return int(self.hidden.shape[0]) - 1

    @property
    def tokens(self) -> int:
        return int(self.hidden.shape[1])

    @property
    def computed(self) -> tuple[int, ...]:
        """Positions computed so far (and cached), in order."""
        return tuple(sorted(self._cache))

    @property
    def nbytes(self) -> int:
        """Memory the kept hidden states take."""
        return int(self.hidden.nbytes)

    def top(self, positions: Iterable[int] | None = None) -> LensTop:
        """Top-k tokens and probabilities of every row at `positions` (default: all; -1 is the last)."""
        wanted = tuple(range(self.tokens)) if positions is None else tuple(self._position(p) for p in positions)
        missing = sorted({p for p in wanted if p not in self._cache})
        if missing:
            ids, probs = self._compute(missing)
            for i, p in enumerate(missing):
                self._cache[p] = (ids[:, i], probs[:, i])
        rows = self.layers + 1
        if not wanted:
            return LensTop((), np.zeros((rows, 0, self.k), np.int32), np.zeros((rows, 0, self.k), np.float32))
        return LensTop(wanted, np.stack([self._cache[p][0] for p in wanted], axis=1),
                       np.stack([self._cache[p][1] for p in wanted], axis=1))

    def _position(self, p: Any) -> int:
        given = int(p)
        q = given + self.tokens if given < 0 else given
        if not 0 <= q < self.tokens:
            raise IndexError(f"position must be in 0..{self.tokens - 1}, got {given}")
        return q

    def _compute(self, positions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        rows, m, vocab = self.layers + 1, len(positions), self.unembed.vocab_size
        h = torch.from_numpy(np.ascontiguousarray(self.hidden[:, np.asarray(positions)]))  # (rows, m, d)
        raw = rows - 1 if self.last_normed else rows  # rows that still need the final norm
        parts = [self.unembed.normed(h[:raw])] if raw else []
        rest = h[raw:].to(device=parts[0].device, dtype=parts[0].dtype) if parts else h
        x = torch.cat([*parts, rest]).reshape(rows * m, -1)
        # Every row and position in as few matrix products as CHUNK_VALUES allows (the unembedding
        # is read from memory once a product: one per row would read it rows times).
        step = max(1, self.chunk_values // max(vocab, 1))
        ids = np.zeros((rows * m, self.k), dtype=np.int32)
        probs = np.zeros((rows * m, self.k), dtype=np.float32)
        for start in range(0, rows * m, step):
            logits = self.unembed.logits(x[start:start + step], normed=True)
            top = logits.topk(self.k, dim=-1)
            ids[start:start + step] = top.indices.cpu().numpy()
            log_total = torch.logsumexp(logits, dim=-1, keepdim=True)
            probs[start:start + step] = torch.exp(top.values - log_total).cpu().numpy()
        return ids.reshape(rows, m, self.k), probs.reshape(rows, m, self.k)


def logit_lens(hidden: np.ndarray | Sequence[Any], readout: Readout, *, last_normed: bool, k: int = TOP_K,
               chunk_values: int = CHUNK_VALUES) -> LogitLens:
    """The lens of hidden states (a (rows, n, d) array, or a model's ``hidden_states``: (1, n, d) tensors)
    through `readout`, computed when asked (`LogitLens.top`).

    `last_normed`: the last hidden state already went through the final norm (transformers
    returns it so), so it goes straight into the unembedding.
    """
    states = hidden if isinstance(hidden, np.ndarray) else hidden_array(hidden)
    return LogitLens(states, readout, last_normed=last_normed, k=k, chunk_values=chunk_values)


def lens_of(internals: Internals) -> LogitLens | None:
    """The lens of a capture's internals, or None without a readout (encoders, unknown heads)."""
    if internals.readout is None:
        return None
    return logit_lens(internals.hidden_states, internals.readout, last_normed=internals.last_normed)
