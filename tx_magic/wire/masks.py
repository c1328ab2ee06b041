"""What kind of mask a kind has (none, causal, explicit): read by the meta, the eager plan and the block layout."""

from __future__ import annotations

import numpy as np

from ..core.trace import Trace
from .schema import MASK_CAUSAL, MASK_EXPLICIT, MASK_NONE


def mask_type(trace: Trace, kind: str) -> tuple[str, np.ndarray | None]:
    """Classify the kind's mask as none, causal (lower triangle) or explicit."""
    if kind not in trace.masks:
        return MASK_NONE, None
    mask = trace.masks[kind]
    if mask.all():
        return MASK_NONE, None
    q, k = mask.shape
    if q == k and _lower_triangle(mask):
        return MASK_CAUSAL, None
    return MASK_EXPLICIT, mask


def _lower_triangle(mask: np.ndarray) -> bool:
    """Whether row i allows exactly keys 0..i: i + 1 allowed, the first refused one at i + 1
    (no n x n temporary: masks of long inputs are 64 MB)."""
    n = mask.shape[0]
    counts = np.count_nonzero(mask, axis=1)
    if not np.array_equal(counts, np.arange(1, n + 1)):
        return False
    return bool(np.array_equal(np.argmin(mask[:-1], axis=1), np.arange(1, n)))
