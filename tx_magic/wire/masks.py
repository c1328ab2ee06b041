"""What kind of mask a kind has (none, causal, explicit): read by the meta, the eager plan and the block layout."""

from __future__ import annotations

import weakref

import numpy as np

from ..core.trace import Trace
from .schema import MASK_CAUSAL, MASK_EXPLICIT, MASK_NONE

#: The type of each mask array seen (by id, dropped with the array): classifying reads all Q x K of a mask
#: (64 MB at 8192 tokens), and the meta, the eager plan and every layer's layout ask for it.
_TYPES: dict[int, str] = {}


def mask_type(trace: Trace, kind: str) -> tuple[str, np.ndarray | None]:
    """Classify the kind's mask as none, causal (lower triangle) or explicit (then also the mask)."""
    mask = trace.masks.get(kind)
    if mask is None:
        return MASK_NONE, None
    key = id(mask)
    if key not in _TYPES:
        _TYPES[key] = _classify(mask)
        weakref.finalize(mask, _TYPES.pop, key, None)
    kind_type = _TYPES[key]
    return kind_type, (mask if kind_type == MASK_EXPLICIT else None)


def _classify(mask: np.ndarray) -> str:
    if mask.all():
        return MASK_NONE
    q, k = mask.shape
    return MASK_CAUSAL if q == k and _lower_triangle(mask) else MASK_EXPLICIT


def _lower_triangle(mask: np.ndarray) -> bool:
    """Whether row i allows exactly keys 0..i: i + 1 allowed, the first refused one at i + 1
    (no n x n temporary: masks of long inputs are 64 MB)."""
    n = mask.shape[0]
    counts = np.count_nonzero(mask, axis=1)
    if not np.array_equal(counts, np.arange(1, n + 1)):
        return False
    return bool(np.array_equal(np.argmin(mask[:-1], axis=1), np.arange(1, n)))
