"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

For self-attention, each layer's attention averaged over heads is mixed with the identity (the
residual connection) and its rows renormalised::

    A_hat_l = rownorm(0.5 * mean_heads(A_l) + 0.5 * I)
    rollout_l = A_hat_l @ A_hat_(l-1) @ ... @ A_hat_0

``rollout_l[q, k]`` estimates how much of token k's input reaches position q after layer l.
`js/src/aggregate.ts` computes the same numbers (the renderer's "rollout" aggregate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def attention_rollout(att: np.ndarray, heads: Sequence[int] | None = None) -> np.ndarray:
    """Rollout through every layer of self-attention `att` (L, H, N, N): float64 (L, N, N).

    `heads` restricts the mean to those heads (default: all). NaN/inf weights count as 0.
    """
    p = np.nan_to_num(np.asarray(att, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if p.ndim != 4 or p.shape[2] != p.shape[3]:
        raise ValueError(f"rollout needs self-attention (layers, heads, n, n), got shape {p.shape}")
    if heads is not None:
        heads = sorted({int(h) for h in heads})
        if not heads or not all(0 <= h < p.shape[1] for h in heads):
            raise ValueError(f"heads must be a non-empty subset of 0..{p.shape[1] - 1}, got {heads}")
        p = p[:, heads]
    layers, _, n, _ = p.shape
    eye = np.eye(n)
    mixed = 0.5 * p.mean(axis=1) + 0.5 * eye
    mixed /= mixed.sum(axis=-1, keepdims=True)
    out = np.empty((layers, n, n))
    current = eye
    for layer in range(layers):
        current = mixed[layer] @ current
        out[layer] = current
    return out


def rollout(trace: Any, kind: str | None = None, heads: Sequence[int] | None = None) -> np.ndarray:
    """`attention_rollout` of a trace's self-attention kind ("self", "encoder" or "decoder")."""
    kind = kind or trace.kinds[0]
    queries, keys = trace.tokens(kind)
    if queries is not keys:
        raise ValueError(f"rollout is defined for self-attention; {kind!r} attends from one sequence to another")
    return attention_rollout(trace.attention(kind), heads)
