"""transformers pipelines: `explain(pipe, text=...)` runs the pipeline's model with its tokenizer (or its
image processor, for image pipelines)."""

from __future__ import annotations

from typing import Any

from ..models import model_name
from .base import Unwrapped, instance_of


def unwrap(obj: Any) -> Unwrapped | None:
    """A pipeline's model and tokenizer (or image processor), else None."""
    if not instance_of(obj, "transformers", "Pipeline"):
        return None
    processor = next((p for p in (getattr(obj, n, None) for n in ("tokenizer", "image_processor", "processor"))
                      if p is not None), None)
    return Unwrapped(obj.model, processor, model_name(obj.model), source=f"transformers {type(obj).__name__}")
