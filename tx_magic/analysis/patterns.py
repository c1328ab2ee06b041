"""The pattern library: named per-head scores that a census (`tx_magic.analysis.census`) aggregates over
many inputs. Users add their own with `register_pattern`.

A pattern scores every head of one attention kind of one trace: a (layers, heads) float64 array, NaN
where this input cannot show the pattern (no repeated tokens for induction, say). Built in, in label
priority order (a head gets the first pattern it clearly shows):

==========  ==========================================================================  =========
pattern     score (a mean over query rows, as in `tx_magic.analysis.stats`)             threshold
==========  ==========================================================================  =========
induction   weight on the token after the earlier occurrence of the query's token       0.4
            (`labels.induction_score`; NaN under MIN_REPEATS repeated positions)
duplicate   weight on the earlier occurrences of the query's own token, at keys          0.4
            k <= q - 2 (so a previous-token head does not count), over the rows that
            have one; NaN under MIN_REPEATS such rows
previous    weight on key q - 1 (`stats` "previous")                                     0.6
first       weight on key 0, a "sink" (`stats` "first")                                  0.9
self        weight on key q (`stats` "self")                                             0.6
local       weight within +-2 positions (`labels.local_share`), a positional head        0.8
broad       entropy / log(allowed keys) (`labels.normalized_entropy`)                    0.9
monotonic   cross-attention only: |Spearman correlation| of the query position and       0.5
            its argmax key, times the rows' mean largest weight. 1 for a sharp
            diagonal (or anti-diagonal) alignment; ~0 for a head that always looks at
            one source token (the correlation is 0) or spreads its weight (1/keys)
==========  ==========================================================================  =========

The scores are those of `labels.head_scores` (which `trace.stats()` and the head types use), so a
census's numbers are the per-trace statistics it aggregates. User patterns come after the built-in
ones but before the two catch-alls, local and broad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import OptionError, TxMagicError
from ..core.trace import Trace
from .labels import BROAD, DOMINANT, INDUCTION, LOCAL, MIN_REPEATS, SINK, head_scores

DUPLICATE = 0.4
MONOTONIC = 0.5

#: A user's score: one head's (queries, keys) float32 array and the tokens (see `register_pattern`) -> float.
ScoreFn = Callable[[np.ndarray, Any], float]
#: A user's probe: (tokenizer, numpy Generator) -> inputs (texts, or lists of token ids) that show the pattern.
ProbeFn = Callable[[Any, np.random.Generator], Sequence[Any]]


@dataclass(frozen=True)
class Pattern:
    """One pattern of the library: its name, threshold, which attention it applies to and its probe."""

    name: str
    threshold: float
    #: True for patterns of cross-attention (queries and keys from different sequences).
    cross: bool
    description: str
    #: A user's per-head score, or None for a built-in (computed for every head at once).
    score: ScoreFn | None = None
    probe: ProbeFn | None = None

    @property
    def builtin(self) -> bool:
        return self.score is None


_BUILTIN = (
    Pattern("induction", INDUCTION, False, "weight on the token after the earlier occurrence of the query's token"),
    Pattern("duplicate", DUPLICATE, False, "weight on earlier occurrences of the query's own token"),
    Pattern("previous", DOMINANT, False, "weight on the previous token"),
    Pattern("first", SINK, False, "weight on the first token (a sink)"),
    Pattern("self", DOMINANT, False, "weight on the token itself"),
    Pattern("local", LOCAL, False, "weight within 2 positions (positional)"),
    Pattern("broad", BROAD, False, "entropy near the uniform's"),
    Pattern("monotonic", MONOTONIC, True, "cross-attention following the source in order (an alignment)"),
)
#: Built-in names no user pattern may take.
BUILTIN_NAMES = tuple(p.name for p in _BUILTIN)
_CATCH_ALL = ("local", "broad")
_USER: dict[str, Pattern] = {}


def register_pattern(name: str, score_fn: ScoreFn, probe: ProbeFn | None = None, *, threshold: float = 0.5,
                     cross: bool = False, description: str = "") -> Pattern:
    """Add a pattern to the library (a later registration of `name` replaces an earlier one).

    ``score_fn(attention, tokens) -> float`` scores one head: `attention` is its (queries, keys)
    float32 array, `tokens` the `Tokens` of the sequence (for ``cross=True`` patterns, the pair
    (query tokens, key tokens)). Return NaN where the input cannot show the pattern. A head shows
    the pattern when the score is >= `threshold`. ``probe(tokenizer, rng)`` may give inputs that
    show it (texts, or lists of token ids); `tx_magic.census` runs them with the standard probes.
    """
    if not isinstance(name, str) or not name.strip() or not name.replace("_", "").replace("-", "").isalnum():
        raise OptionError(f"a pattern's name is a word (letters, digits, - and _), got {name!r}")
    if name in BUILTIN_NAMES:
        raise OptionError(f"{name!r} is a built-in pattern; give yours another name")
    if not callable(score_fn):
        raise OptionError(f"score_fn must be a function (attention, tokens) -> float, got {type(score_fn).__name__}")
    if probe is not None and not callable(probe):
        raise OptionError(f"probe must be a function (tokenizer, rng) -> inputs, got {type(probe).__name__}")
    pattern = Pattern(name, float(threshold), bool(cross), description or name, score_fn, probe)
    _USER[name] = pattern
    return pattern


def unregister_pattern(name: str) -> None:
    """Remove a user's pattern (built-in ones stay)."""
    if name not in _USER:
        raise OptionError(f"no user pattern {name!r}; registered: {sorted(_USER) or 'none'}")
    del _USER[name]


def library(cross: bool | None = None) -> list[Pattern]:
    """Every pattern in label priority order; only those of cross-attention (True) or of one
    sequence (False) when `cross` is given."""
    specific = [p for p in _BUILTIN if p.name not in _CATCH_ALL]
    ordered = specific + list(_USER.values()) + [p for p in _BUILTIN if p.name in _CATCH_ALL]
    return [p for p in ordered if cross is None or p.cross == cross]


def get_pattern(name: str) -> Pattern:
    for pattern in library():
        if pattern.name == name:
            return pattern
    raise OptionError(f"no pattern {name!r}; the library has {[p.name for p in library()]}")


def is_cross(trace: Trace, kind: str) -> bool:
    """Whether `kind` attends from one sequence to another (cross-attention)."""
    queries, keys = trace.tokens(kind)
    return queries is not keys


def pattern_scores(trace: Trace, kind: str | None = None,
                   patterns: Sequence[Pattern] | None = None) -> dict[str, np.ndarray]:
    """Every pattern's score of every head of `kind`: name -> (layers, heads) float64."""
    kind = kind or trace.kinds[0]
    cross = is_cross(trace, kind)
    chosen = [p for p in (library(cross) if patterns is None else patterns) if p.cross == cross]
    att = trace.attention(kind)
    queries, keys = trace.tokens(kind)
    out: dict[str, np.ndarray] = {}
    if not cross:
        builtin = head_scores(att, trace.mask(kind), queries.ids)
        builtin["duplicate"] = duplicate_score(att, queries.ids)
    else:
        builtin = {"monotonic": monotonic_score(att)}
    for pattern in chosen:
        if pattern.score is None:
            out[pattern.name] = builtin[pattern.name]
        else:
            out[pattern.name] = per_head(att, (queries, keys) if cross else queries, pattern.score, "pattern",
                                         pattern.name)
    return out


def per_head(att: np.ndarray, tokens: Any, fn: Callable[[np.ndarray, Any], Any], what: str,
             name: str) -> np.ndarray:
    """``fn(att[layer, head], tokens)`` for every head, as (layers, heads) float64; a function that fails
    or gives no number raises one TxMagicError naming it and the head."""
    layers, heads = att.shape[:2]
    out = np.empty((layers, heads), dtype=np.float64)
    for layer in range(layers):
        for head in range(heads):
            try:
                value = fn(att[layer, head], tokens)
            except Exception as exc:  # a user's function: say which one and where, then stop
                raise TxMagicError(f"the {what} {name!r} failed on layer {layer}, head {head}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            try:
                out[layer, head] = float(value)
            except (TypeError, ValueError):
                raise TxMagicError(f"the {what} {name!r} gave {type(value).__name__} on layer {layer}, head {head}: "
                                   "return a number (a float, or NaN where it does not apply)") from None
    return out


def duplicate_score(att: np.ndarray, token_ids: Sequence[int]) -> np.ndarray:
    """Weight on earlier occurrences (keys k <= q - 2) of the query's own token, averaged over the rows
    that have one; NaN with fewer than MIN_REPEATS such rows, or without token ids."""
    p = np.nan_to_num(np.asarray(att, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = p.shape[-1]
    ids = np.asarray(list(token_ids)[:n])
    if len(ids) < n or (ids < 0).any():  # ids unknown (-1): nothing to match
        return np.full(p.shape[:2], np.nan)
    same = ids[:, None] == ids[None, :]
    earlier = np.tril(np.ones((n, n), dtype=bool), k=-2)
    targets = same & earlier
    rows = targets.any(-1)
    if rows.sum() < MIN_REPEATS:
        return np.full(p.shape[:2], np.nan)
    mass = (p * targets).sum(-1)  # (L, H, Q)
    result: np.ndarray = mass[..., rows].mean(-1)
    return result


def monotonic_score(att: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of query position and argmax key, times the mean largest weight (see the
    module's table); NaN with fewer than 3 query rows."""
    p = np.nan_to_num(np.asarray(att, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    layers, heads, nq, _ = p.shape
    if nq < 3:
        return np.full((layers, heads), np.nan)
    argmax = p.argmax(-1).astype(np.float64)  # (L, H, Q)
    sharp = p.max(-1).mean(-1)
    ranks_q = _ranks(np.arange(nq, dtype=np.float64))
    out = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            ranks_k = _ranks(argmax[layer, head])
            if np.ptp(ranks_k) == 0:
                continue  # one key for every row: no alignment
            rho = np.corrcoef(ranks_q, ranks_k)[0, 1]
            out[layer, head] = abs(rho) * sharp[layer, head]
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as Spearman's correlation needs."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks
