"""Standard probes: generated inputs that make each pattern of the library show, for `tx_magic.census`.

- ``repeated``: a sequence of random tokens, then the same sequence again. Induction heads
  (Olsson et al. 2022) attend, in the second half, to the token after the earlier occurrence.
- ``duplicate``: random tokens where some reappear later (at least 2 positions on): duplicate-token
  heads attend to the earlier occurrence itself.
- ``natural``: sentences of a small English corpus shipped with the package (``data/corpus.txt``, 40
  sentences written for it): previous-token, local/positional and broad heads.
- ``long``: corpus sentences run together to a few hundred tokens: attention sinks (weight on the first
  token) show best on long inputs.

Random tokens are drawn from the tokenizer's vocabulary, from word-like tokens only (no special, byte
or punctuation tokens), with the model's special tokens ([CLS], <s>, ...) around them as the tokenizer
adds them to a text. Every probe is repeatable: it takes a numpy random Generator.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import OptionError

CORPUS = pathlib.Path(__file__).resolve().parent / "data" / "corpus.txt"
REPEATED_LENGTH = 20
DUPLICATE_LENGTH = 32
DUPLICATES = 8
LONG_TOKENS = 256
#: Inputs each probe makes by default.
DEFAULT_COUNTS = {"repeated": 6, "duplicate": 6, "natural": 12, "long": 2}


@dataclass(frozen=True)
class ProbeInput:
    """One input of a census: a text, or token ids, and which probe made it ("text" for the user's)."""

    probe: str
    text: str | None = None
    ids: tuple[int, ...] | None = None
    #: The decoder text of an encoder-decoder model.
    target: str | None = None

    @property
    def label(self) -> str:
        """A short description for lists and the text selector."""
        if self.text is not None:
            text = " ".join(self.text.split())
            return f"{self.probe}: " + (text if len(text) <= 60 else text[:59] + "…")
        return f"{self.probe}: {len(self.ids or ())} token ids"


def corpus() -> list[str]:
    """The shipped sentences, one per line."""
    return [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def word_ids(tokenizer: Any) -> np.ndarray:
    """Ids of the tokenizer's word-like tokens (letters only, 2+ characters, not special), sorted."""
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if callable(get_vocab):
        vocab = get_vocab()
        ids = [i for token, i in vocab.items() if i not in special and _wordlike(token)]
    else:
        size = getattr(tokenizer, "vocab_size", None)
        if not isinstance(size, int):
            raise OptionError("generated probes need a tokenizer with a vocabulary (get_vocab() or vocab_size); "
                              "give texts instead, with probes=False")
        ids = [i for i in range(size) if i not in special]
    if len(ids) < 2 * REPEATED_LENGTH:
        raise OptionError(f"the tokenizer has only {len(ids)} word-like tokens: too few for random probes")
    return np.array(sorted(ids), dtype=np.int64)


def _wordlike(token: str) -> bool:
    core = token.lstrip("Ġ▁#")
    return len(core) >= 2 and core.isalpha() and core.isascii()


def special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text ([CLS] ... [SEP]; <s> ...)."""
    try:
        full = list(tokenizer("hello")["input_ids"])
        body = list(tokenizer("hello", add_special_tokens=False)["input_ids"])
    except (TypeError, KeyError, IndexError):
        return [], []
    for start in range(len(full) - len(body) + 1):
        if full[start:start + len(body)] == body:
            return full[:start], full[start + len(body):]
    return [], []


def _framed(tokenizer: Any, probe: str, body: Sequence[int]) -> ProbeInput:
    before, after = special_frame(tokenizer)
    return ProbeInput(probe, ids=tuple(int(i) for i in (*before, *body, *after)))


def repeated(tokenizer: Any, rng: np.random.Generator, count: int) -> list[ProbeInput]:
    """`count` inputs of REPEATED_LENGTH random tokens, twice."""
    vocab = word_ids(tokenizer)
    out = []
    for _ in range(count):
        body = rng.choice(vocab, REPEATED_LENGTH, replace=False)
        out.append(_framed(tokenizer, "repeated", [*body, *body]))
    return out


def duplicate(tokenizer: Any, rng: np.random.Generator, count: int) -> list[ProbeInput]:
    """`count` inputs of DUPLICATE_LENGTH random tokens, DUPLICATES of which (in the second half) copy a token
    from at least 2 positions before."""
    vocab = word_ids(tokenizer)
    out = []
    for _ in range(count):
        body = list(rng.choice(vocab, DUPLICATE_LENGTH, replace=False))
        for at in sorted(rng.choice(np.arange(DUPLICATE_LENGTH // 2, DUPLICATE_LENGTH), DUPLICATES, replace=False)):
            body[at] = body[int(rng.integers(0, at - 1))]
        out.append(_framed(tokenizer, "duplicate", body))
    return out


def natural(tokenizer: Any, rng: np.random.Generator, count: int) -> list[ProbeInput]:  # noqa: ARG001
    """`count` sentences of the corpus (a random choice)."""
    sentences = corpus()
    chosen = rng.choice(len(sentences), min(count, len(sentences)), replace=False)
    return [ProbeInput("natural", text=sentences[int(i)]) for i in chosen]


def long(tokenizer: Any, rng: np.random.Generator, count: int) -> list[ProbeInput]:
    """`count` texts of corpus sentences run together to about LONG_TOKENS tokens."""
    sentences = corpus()
    out = []
    for _ in range(count):
        order = rng.permutation(len(sentences))
        text = ""
        for i in order:
            text = f"{text} {sentences[int(i)]}".strip()
            if _length(tokenizer, text) >= LONG_TOKENS:
                break
        out.append(ProbeInput("long", text=text))
    return out


def _length(tokenizer: Any, text: str) -> int:
    encoded = tokenizer(text)
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    return len(ids)


#: The standard probes by name: (tokenizer, rng, count) -> inputs.
STANDARD: dict[str, Callable[[Any, np.random.Generator, int], list[ProbeInput]]] = {
    "repeated": repeated, "duplicate": duplicate, "natural": natural, "long": long,
}
