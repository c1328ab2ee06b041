"""Display strings for tokens: tokenizer markers (Ġ, ▁, ##) turned into readable text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.errors import ShapeError
from ..core.tokens import Tokens

#: Whitespace made visible, so a token that is only a space or a newline still shows.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
#: Byte-level BPE (GPT-2) and sentencepiece markers for spaces and newlines.
_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t"}


def visible(text: str) -> str:
    """Strip surrounding whitespace; a token of whitespace only shows as symbols instead."""
    stripped = text.strip()
    if stripped:
        return stripped
    return "".join(_VISIBLE.get(ch, ch) for ch in text) or "∅"


def clean_marker(raw: str) -> str:
    """Readable text of a raw token string without the source text (WordPiece, BPE, sentencepiece)."""
    if raw.startswith("##") and len(raw) > 2:
        return raw[2:]
    if len(raw) >= 3 and raw.startswith("<0x") and raw.endswith(">"):  # sentencepiece byte fallback
        return raw
    return "".join(_MARKERS.get(ch, ch) for ch in raw)


def display_tokens(
    tokenizer: Any,
    ids: Sequence[int],
    *,
    text: str | Sequence[str] | None = None,
    offsets: Sequence[tuple[int, int]] | None = None,
    special: Sequence[bool] | None = None,
    segment: Sequence[int] | None = None,
) -> Tokens:
    """Build `Tokens` for `ids`: display text from the source `text` spans where the
    tokenizer gives offsets, else from the raw token with its markers cleaned.

    For a sentence pair, `text` is (text A, text B) and `segment` says which one each token's
    offsets point into.
    """
    ids = [int(i) for i in ids]
    texts: tuple[str, ...] = () if text is None else (text,) if isinstance(text, str) else tuple(text)
    segment = [0] * len(ids) if segment is None else [int(s) for s in segment]
    raw = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    if special is None:
        special = [i in special_ids for i in ids]
    if not len(raw) == len(special) == len(ids):
        raise ShapeError(f"The tokenizer gave {len(raw)} tokens and {len(special)} special flags for {len(ids)} ids; "
                         "tx_magic needs one of each per id.")
    shown = []
    for i, (tok, is_special) in enumerate(zip(raw, special, strict=True)):
        span = offsets[i] if offsets is not None and i < len(offsets) else None
        if is_special:
            shown.append(tok)
        elif texts and span is not None and span[1] > span[0]:
            source = texts[min(segment[i], len(texts) - 1)]
            shown.append(visible(source[span[0]:span[1]]))
        else:
            shown.append(visible(_from_raw(tokenizer, tok)))
    return Tokens(text=tuple(shown), ids=tuple(ids), raw=tuple(raw), special=tuple(bool(s) for s in special),
                  segment=tuple(segment))


def _from_raw(tokenizer: Any, raw: str) -> str:
    """The tokenizer's own decoding of one raw token, or the marker-cleaned raw string."""
    if raw.startswith("##") and len(raw) > 2:
        return raw[2:]
    try:
        decoded = tokenizer.convert_tokens_to_string([raw])
    except Exception:  # noqa: BLE001 - any tokenizer; fall back to the raw string
        decoded = None
    if not isinstance(decoded, str) or not decoded or "\ufffd" in decoded:
        return clean_marker(raw)
    return decoded
