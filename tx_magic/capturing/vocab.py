"""Display strings of a whole vocabulary, for the logit lens and next-token views."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .display import clean_marker


def vocab_strings(tokenizer: Any, size: int) -> tuple[str, ...]:
    """Display string of every token id below `size`: the tokenizer's own decoding of the token
    alone (" Paris" keeps its space), or the raw token with its markers cleaned where that decoding
    is a partial character. Ids the tokenizer does not know show as ``<id N>``. Cached per tokenizer.

    Byte-level BPE vocabularies (GPT-2, SmolLM2, Llama 3, ...) are mapped from their raw tokens
    without running the decoder (50k tokens: ~0.1 s instead of ~1 s), checked against the decoder
    on a sample; other tokenizers decode every token.
    """
    try:
        cached = _VOCAB_CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and len(cached) == size:
        return cached
    out = _vocab_strings(tokenizer, size)
    with contextlib.suppress(TypeError):  # a tokenizer that cannot be weakly referenced goes uncached
        _VOCAB_CACHE[tokenizer] = out
    return out


_VOCAB_CACHE: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
#: Ids checked against the tokenizer's own decoder when the byte-level mapping is used.
VOCAB_CHECK_SAMPLE = 256


def _vocab_strings(tokenizer: Any, size: int) -> tuple[str, ...]:
    known = min(size, len(tokenizer)) if hasattr(tokenizer, "__len__") else size
    try:
        raw = _raw_tokens(tokenizer, known)
    except Exception:  # noqa: BLE001 - any tokenizer: fall back to ids
        return tuple(f"<id {i}>" for i in range(size))
    out = _byte_level_strings(tokenizer, raw) if _is_byte_level(tokenizer) else None
    if out is None:
        out = _decoded_strings(tokenizer, raw, range(known))
    return tuple(out) + tuple(f"<id {i}>" for i in range(known, size))


def _raw_tokens(tokenizer: Any, known: int) -> list[str]:
    """The tokenizer's own string of each id below `known` (one call into a fast tokenizer's vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        raw: list[str | None] = [None] * known
        for token, i in backend.get_vocab(with_added_tokens=True).items():
            if 0 <= i < known:
                raw[i] = token
        if None not in raw:
            return raw  # type: ignore[return-value]
    return [str(t) for t in tokenizer.convert_ids_to_tokens(list(range(known)))]


def _display(raw: str, decoded: Any) -> str:
    """One token's display string from its raw form and its decoding alone."""
    if not isinstance(decoded, str) or not decoded or "\ufffd" in decoded:
        return clean_marker(raw)
    if raw[:1] in ("▁", "Ġ") and not decoded.startswith(" "):  # sentencepiece drops a lone token's space
        return " " + decoded
    return decoded


def _decoded_strings(tokenizer: Any, raw: Sequence[str], ids: Iterable[int]) -> list[str]:
    """Display strings of `ids` (whose raw tokens are `raw`) through the tokenizer's decoder."""
    ids = list(ids)
    try:
        decoded = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False)
    except Exception:  # noqa: BLE001 - any tokenizer; fall back to the raw strings
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != len(ids):
        decoded = [None] * len(ids)
    return [_display(r, d) for r, d in zip(raw, decoded, strict=True)]


def _is_byte_level(tokenizer: Any) -> bool:
    """Whether the tokenizer decodes with a plain byte-level decoder (GPT-2 style)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return decoder is not None and type(decoder).__name__ == "ByteLevel"


def _byte_level_strings(tokenizer: Any, raw: Sequence[str]) -> list[str] | None:
    """Display strings by undoing the byte-to-unicode map of byte-level BPE, or None when a sample
    of ids decodes differently (then every token is decoded)."""
    table = str.maketrans({c: chr(b) for b, c in _bytes_to_unicode().items()})
    added = {int(i): str(getattr(t, "content", t)) for i, t in
             (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()}
    plain = ["" if i in added else t for i, t in enumerate(raw)]
    try:  # each character of a token stands for one byte of its UTF-8 text: translate them all at once
        data = "".join(plain).translate(table).encode("latin-1")
    except UnicodeError:
        data = None
    out: list[str] = []
    end = 0
    for i, token in enumerate(raw):
        if i in added:
            out.append(_display(token, added[i]))
            continue
        start, end = end, end + len(token)
        try:
            text = (data[start:end] if data is not None else token.translate(table).encode("latin-1")).decode("utf-8")
        except UnicodeError:
            out.append(clean_marker(token))
            continue
        out.append(text if text and "\ufffd" not in text else clean_marker(token))
    n = len(raw)
    sample = sorted(set(np.linspace(0, n - 1, min(n, VOCAB_CHECK_SAMPLE)).astype(int).tolist()) | set(added))
    sample = [i for i in sample if i < n]
    if _decoded_strings(tokenizer, [raw[i] for i in sample], sample) != [out[i] for i in sample]:
        return None
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (its vocabulary's alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))
