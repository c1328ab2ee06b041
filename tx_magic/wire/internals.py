"""The ``_internals`` trait (hidden states, logit lens, next-token logits, generation) and ``_meta["image"]``."""

from __future__ import annotations

import numpy as np

from ..core.trace import Trace
from .schema import Image, Internals, Logits


def encode_internals(trace: Trace) -> Internals:
    """The ``_internals`` trait: what the trace holds of hidden states, lens, logits, generation."""
    out: Internals = {}
    if trace.hidden is not None:
        rows, n = trace.hidden.norms.shape
        out["hidden"] = {"layers": rows - 1, "tokens": n,
                         "norms": np.ascontiguousarray(trace.hidden.norms, dtype="<f4").tobytes(),
                         "cosines": np.ascontiguousarray(trace.hidden.cosines, dtype="<f4").tobytes(),
                         "last_normed": bool(trace.hidden.last_normed)}
    if trace.lens is not None:
        out["lens"] = {"layers": trace.lens.layers, "tokens": trace.lens.tokens, "k": trace.lens.k}
    if trace.logits is not None:
        out["logits"] = encode_logits(trace, trace.logits.tokens - 1)
    if trace.vocab is not None and ("lens" in out or "logits" in out):
        out["vocab"] = list(trace.vocab)
    if trace.generation is not None:
        out["generation"] = {"prompt": trace.generation.prompt_length, "steps": trace.generation.steps,
                             "sample": trace.generation.sample}
    return out


def encode_logits(trace: Trace, position: int) -> Logits:
    """Next-token logits after token `position`: {"position", "data": float32 (V,) bytes}."""
    if trace.logits is None:
        raise ValueError("this trace has no next-token logits (only causal LMs have them)")
    values = np.ascontiguousarray(trace.logits.at(int(position)), dtype="<f4")
    return {"position": int(position), "data": values.tobytes()}


def encode_image(trace: Trace) -> Image | None:
    """``_meta["image"]`` for a trace with an image, else None."""
    image = trace.image
    if image is None:
        return None
    return {"png": bytes(image.png), "width": int(image.width), "height": int(image.height), "rows": int(image.rows),
            "cols": int(image.cols), "sequence": "input", "first": int(image.first)}
