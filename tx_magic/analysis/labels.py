"""Conservative head-type labels: a head gets a label only when the pattern clearly dominates.

Tools that labelled most heads "positional" were not useful; here most heads of a real model
get no label. Each head gets at most one label, the first that applies in this order:

=============  ==========================================================================
label          applies when (means over query rows, see `tx_magic.analysis.stats`)
=============  ==========================================================================
induction      the input repeats tokens (>= MIN_REPEATS positions whose token occurred
               before) and the weight on the token after the earlier occurrence is
               >= INDUCTION (0.4) on average
previous       weight on the previous token >= DOMINANT (0.6)
first          weight on the first token (a "sink") >= SINK (0.9): most causal LMs send
               much of every head's attention to token 0 (SmolLM2: 162 of 270 heads
               >= 0.6 on a 13-token input, 51 >= 0.9), so only the heads that do
               little else are called sinks
self           weight on the query's own position >= DOMINANT (0.6)
local          weight within LOCAL_WINDOW (2) positions >= LOCAL (0.8), none of the above
broad          entropy >= BROAD (0.9) of the uniform entropy over the allowed keys
=============  ==========================================================================

Inputs under MIN_TOKENS query tokens get no labels: a +-2 window or the first token is
then most of every row, whatever the head does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from ..core.tokens import induction_targets
from .stats import head_stats

LABELS = ("induction", "previous", "first", "self", "local", "broad")
DOMINANT = 0.6
SINK = 0.9
MIN_TOKENS = 8
INDUCTION = 0.4
MIN_REPEATS = 4
LOCAL = 0.8
LOCAL_WINDOW = 2
BROAD = 0.9


def head_types(att: np.ndarray, mask: np.ndarray | None = None, token_ids: Sequence[int] | None = None,
               *, same_sequence: bool = True) -> np.ndarray:
    """A (layers, heads) array of labels ("" for none) for self-attention `att` (L, H, Q, K)."""
    layers, heads, nq, _ = np.shape(att)
    if nq < MIN_TOKENS:
        return np.full((layers, heads), "", dtype=object)
    return label_scores(head_scores(att, mask, token_ids, same_sequence=same_sequence), (layers, heads))


def head_scores(att: np.ndarray, mask: np.ndarray | None = None, token_ids: Sequence[int] | None = None,
                *, same_sequence: bool = True) -> dict[str, np.ndarray]:
    """The score behind each label, label -> (layers, heads) float64, for any input length (labels
    need MIN_TOKENS): previous, first, self (`head_stats`), broad, and with queries and keys from one
    sequence local, and with token ids induction. `tx_magic.analysis.patterns` reuses them."""
    p = np.nan_to_num(np.asarray(att, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    nq, nk = p.shape[-2:]
    allowed = np.ones((nq, nk), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    stats = head_stats(p, same_sequence=same_sequence)
    scores: dict[str, np.ndarray] = {
        "previous": stats["previous"], "first": stats["first"], "self": stats["self"],
        "broad": normalized_entropy(p, allowed),
    }
    if same_sequence and nq == nk:
        scores["local"] = local_share(p)
        if token_ids is not None:
            scores["induction"] = induction_score(p, token_ids)
    return scores


THRESHOLDS = {"induction": INDUCTION, "previous": DOMINANT, "first": SINK, "self": DOMINANT,
              "local": LOCAL, "broad": BROAD}


def label_scores(scores: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Labels from per-head scores (label -> (layers, heads)); the first label in LABELS that applies."""
    labels = np.full(shape, "", dtype=object)
    for label in reversed(LABELS):  # earlier labels overwrite later ones
        if label in scores:
            hit = np.nan_to_num(scores[label], nan=-1.0) >= THRESHOLDS[label]
            labels[hit] = label
    return labels


def normalized_entropy(p: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Entropy / log(allowed keys), averaged over rows with at least two allowed keys."""
    n_allowed = allowed.sum(-1)
    rows = n_allowed >= 2
    if not rows.any():
        return np.full(p.shape[:2], np.nan)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    ratio = entropy[..., rows] / np.log(n_allowed[rows])
    return cast(np.ndarray, ratio.mean(-1))


def local_share(p: np.ndarray) -> np.ndarray:
    """Weight within LOCAL_WINDOW positions of the query, averaged over rows."""
    q = np.arange(p.shape[-1])
    near = np.abs(q[:, None] - q[None, :]) <= LOCAL_WINDOW
    return cast(np.ndarray, (p * near).sum(-1).mean(-1))


def induction_score(p: np.ndarray, token_ids: Sequence[int]) -> np.ndarray:
    """Mean weight on the induction target over repeated positions; NaN with too few repeats."""
    pairs = induction_targets(list(token_ids)[: p.shape[-2]])
    if len(pairs) < MIN_REPEATS:
        return np.full(p.shape[:2], np.nan)
    qs, ks = np.array(pairs).T
    return cast(np.ndarray, p[..., qs, ks].mean(-1))
