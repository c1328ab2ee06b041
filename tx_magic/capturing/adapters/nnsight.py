"""nnsight: `explain(nnsight.LanguageModel(...), text=...)` (also its successor `TransformersModel`).

The transformers model an nnsight model wraps is its ``_module`` (``_model`` in older versions); a
model made with ``dispatch=False`` holds meta tensors until first run, so tx_magic dispatches it first,
as nnsight does on its first trace.
"""

from __future__ import annotations

from typing import Any

from ..models import model_name
from .base import Unwrapped, instance_of

MODULE = "nnsight"


def is_nnsight_model(obj: Any) -> bool:
    """An nnsight model of a transformers model (LanguageModel, TransformersModel, NNsight of one)."""
    return instance_of(obj, MODULE, "LanguageModel", "NNsight") or instance_of(
        obj, "nnsight.modeling.transformers", "TransformersModel")


def unwrap(obj: Any) -> Unwrapped | None:
    """The transformers model and tokenizer inside an nnsight model, else None."""
    if not is_nnsight_model(obj):
        return None
    if getattr(obj, "dispatched", True) is False and callable(getattr(obj, "dispatch", None)):
        obj.dispatch()  # load the real weights in place of the meta ones, as nnsight's first trace would
    inner = next((m for m in (getattr(obj, "_module", None), getattr(obj, "_model", None)) if m is not None), None)
    if inner is None:
        return None
    return Unwrapped(inner, getattr(obj, "tokenizer", None), model_name(inner), source=f"nnsight {type(obj).__name__}")
