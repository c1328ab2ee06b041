"""`Tokens`: one token sequence of a trace, and the token-id patterns statistics look for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from .errors import ShapeError


@dataclass(frozen=True)
class Tokens(Sequence[str]):
    """A token sequence: display strings plus what they came from.

    Behaves as a sequence of display strings (``list(tokens)``); ``ids``, ``raw``
    (the tokenizer's own strings), ``special`` (True for [CLS], <s>, ...) and ``segment``
    (0 for text A, 1 for text B of a sentence pair) run alongside.
    """

    text: tuple[str, ...]
    ids: tuple[int, ...] = ()
    raw: tuple[str, ...] = ()
    special: tuple[bool, ...] = ()
    segment: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.text)
        object.__setattr__(self, "text", tuple(str(t) for t in self.text))
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids) or (-1,) * n)
        object.__setattr__(self, "raw", tuple(self.raw) or self.text)
        object.__setattr__(self, "special", tuple(bool(s) for s in self.special) or (False,) * n)
        object.__setattr__(self, "segment", tuple(int(s) for s in self.segment) or (0,) * n)
        if not (len(self.ids) == len(self.raw) == len(self.special) == len(self.segment) == n):
            raise ShapeError("Tokens: text, ids, raw, special and segment must have the same length")

    def __len__(self) -> int:
        return len(self.text)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...

    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self.text[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.text)


def induction_targets(token_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(query, key) pairs where the key follows the latest earlier occurrence of the query's token.

    An induction head (Olsson et al. 2022) at a repeated token attends to the token that came
    after that token last time: in ``A B ... A`` the second ``A`` looks at ``B``.
    """
    last: dict[int, int] = {}
    pairs = []
    for i, tok in enumerate(token_ids):
        if tok in last and last[tok] + 1 < i:
            pairs.append((i, last[tok] + 1))
        last[tok] = i
    return pairs


def induction_target_rows(token_ids: Sequence[int], n: int) -> np.ndarray:
    """`induction_targets` as one key per query row of an n-token input, -1 where a row has none."""
    target = np.full(n, -1, dtype=np.int64)
    for query, key in induction_targets(list(token_ids)[:n]):
        target[query] = key
    return target
