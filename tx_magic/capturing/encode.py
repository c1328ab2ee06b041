"""Turn texts into the token ids a transformers model reads: encodings with offsets, special
flags and pair segments; truncation to what the model takes; decoder inputs of a target."""

from __future__ import annotations

from typing import Any

from ..core.errors import EmptyTextError

#: Position limits above this are "no real limit" (tokenizers use 1e30 for unbounded).
NO_LIMIT = 1_000_000


class Encoded:
    """Token ids of one text (or pair), with offsets, special flags and segments."""

    def __init__(self, enc: Any) -> None:
        self.ids = list(enc["input_ids"])
        self.offsets = [tuple(o) for o in enc["offset_mapping"]] if "offset_mapping" in enc else None
        self.special = [bool(s) for s in enc.get("special_tokens_mask", [0] * len(self.ids))]
        self.segment = segments(enc, len(self.ids))
        self.token_type_ids = list(enc["token_type_ids"]) if "token_type_ids" in enc else None

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.ids)


def segments(enc: Any, n: int) -> list[int]:
    """0/1 per token for text A/B; special tokens belong to the text they close ([SEP] after A is A)."""
    if "token_type_ids" in enc and any(enc["token_type_ids"]):
        return [int(t) for t in enc["token_type_ids"]]
    try:
        ids = enc.sequence_ids()
    except (AttributeError, ValueError):
        return [0] * n
    segment, current = [], 0
    for sid in ids:
        current = sid if sid is not None else current
        segment.append(int(current))
    return segment


def encode(tokenizer: Any, text: str, limit: int | None, what: str, name: str,
            warnings: list[str], *, as_target: bool = False, pair: str | None = None) -> Encoded:
    kwargs: dict[str, Any] = {"return_special_tokens_mask": True}
    if getattr(tokenizer, "is_fast", False):
        kwargs["return_offsets_mapping"] = True

    def run() -> Encoded:
        if as_target:
            return Encoded(tokenizer(text_target=text, **kwargs))
        return Encoded(tokenizer(text, pair, **kwargs) if pair is not None else tokenizer(text, **kwargs))

    enc = run()
    if limit is not None and len(enc.ids) > limit:
        warnings.append(
            f"The {what} has {len(enc.ids)} tokens; {name} takes at most {limit}, so only the first {limit} are shown."
        )
        kwargs.update(truncation=True, max_length=limit)
        enc = run()
    if not enc.ids:
        raise EmptyTextError(f"The {what} gave no tokens. Give some text the tokenizer can read.")
    return enc


def position_limit(model: Any, tokenizer: Any, max_tokens: int | None) -> int | None:
    config = getattr(model, "config", None)
    limits = [getattr(config, a, None) for a in ("max_position_embeddings", "n_positions", "max_target_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    limits.append(max_tokens)
    real = [int(x) for x in limits if isinstance(x, (int, float)) and 0 < x < NO_LIMIT]
    return min(real) if real else None


def decoder_inputs(model: Any, target_ids: list[int]) -> list[int]:
    import torch

    labels = torch.tensor([target_ids])
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return [int(i) for i in model.prepare_decoder_input_ids_from_labels(labels=labels)[0].tolist()]
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model.config, "pad_token_id", 0) or 0
    return [int(start), *target_ids[:-1]]


def from_ids(tokenizer: Any, ids: list[int]) -> Encoded:
    """Given token ids as an encoding: no offsets, special where the tokenizer says so."""
    if not ids:
        raise EmptyTextError("No token ids given: give at least one.")
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [int(i) for i in ids]
    return Encoded({"input_ids": ids, "special_tokens_mask": [int(i in special_ids) for i in ids]})


