"""Requests from the renderer and their replies (custom messages), answered from the trace."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.trace import Trace
from .blocks import encode_block, encode_layer, encode_topk
from .internals import encode_logits
from .schema import (DTYPE, MAX_LENS_POSITIONS, REPLY_BLOCK, REPLY_ERROR, REPLY_LAYER, REPLY_LENS, REPLY_LENS_ERROR,
                     REPLY_LOGITS, REPLY_LOGITS_ERROR, REPLY_TOPK, REQUEST_BLOCK, REQUEST_LAYER, REQUEST_LENS,
                     REQUEST_LOGITS, REQUEST_TOPK, RequestError)


def answer(trace: Trace, request: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]] | None:
    """The reply (content, buffers) to a renderer's request, an error reply, or None if not a request."""
    kind_of = request.get("type")
    if kind_of not in (REQUEST_LAYER, REQUEST_BLOCK, REQUEST_TOPK):
        return None
    echo = {"id": request["id"]} if "id" in request else {}
    kind, layer = request.get("kind"), request.get("layer")
    try:
        if not isinstance(kind, str):
            raise RequestError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
        if kind_of == REQUEST_LAYER:
            block = encode_layer(trace, kind, layer, request.get("dtype", DTYPE), request.get("pool"))
            reply_type, parts = REPLY_LAYER, ["data", "scale"]
        elif kind_of == REQUEST_BLOCK:
            block = encode_block(trace, kind, layer, *(request.get(n) for n in ("q0", "q1", "k0", "k1")))
            reply_type, parts = REPLY_BLOCK, ["data"]
        else:
            block = encode_topk(trace, kind, layer)
            reply_type, parts = REPLY_TOPK, ["index", "data"]
    except (RequestError, KeyError, IndexError, TypeError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return {"type": REPLY_ERROR, "id": request.get("id"), "kind": kind, "layer": layer,
                "message": str(message)}, []
    buffers = [block.pop(name) for name in parts if name in block]
    return {"type": reply_type, **block, **echo}, buffers


def answer_lens(trace: Trace, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Reply to a REQUEST_LENS message: the lens at the positions asked for, or REPLY_LENS_ERROR."""
    request_id = content.get("id")
    try:
        if trace.lens is None:
            raise ValueError("this trace has no logit lens (only causal LMs have one)")
        positions = content.get("positions")
        if not isinstance(positions, list) or not positions or len(positions) > MAX_LENS_POSITIONS:
            raise ValueError(f"positions must be a list of 1..{MAX_LENS_POSITIONS} token positions")
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
            raise TypeError("positions must be whole numbers")
        top = trace.lens.top(positions)
    except (IndexError, TypeError, ValueError) as exc:
        return {"type": REPLY_LENS_ERROR, "id": request_id, "message": str(exc)}, []
    reply = {"type": REPLY_LENS, "id": request_id, "positions": list(top.positions), "k": int(top.ids.shape[-1])}
    return reply, [np.ascontiguousarray(top.ids, dtype="<i4").tobytes(),
                   np.ascontiguousarray(top.probs, dtype="<f4").tobytes()]


def answer_logits(trace: Trace, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Reply to a REQUEST_LOGITS message: another position's full-vocabulary logits, or REPLY_LOGITS_ERROR."""
    position = content.get("position")
    try:
        reply = encode_logits(trace, int(position))  # type: ignore[arg-type]  # checked by int()
    except (IndexError, TypeError, ValueError) as exc:
        return {"type": REPLY_LOGITS_ERROR, "position": position, "message": str(exc)}, []
    data = reply.pop("data")
    return {"type": REPLY_LOGITS, **reply}, [data]


def reply_to(trace: Trace, content: Any) -> tuple[dict[str, Any], list[bytes]] | None:
    """The reply to any request from the renderer, or None when `content` is not a request."""
    if not isinstance(content, dict):
        return None
    if content.get("type") == REQUEST_LENS:
        return answer_lens(trace, content)
    if content.get("type") == REQUEST_LOGITS:
        return answer_logits(trace, content)
    return answer(trace, content)
