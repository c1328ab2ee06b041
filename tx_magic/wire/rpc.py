"""One request/reply channel between Python and the renderer, over the widget's custom messages.

Every request, either way, is ``{"type": <request type>, "id": <str>, "payload": {...}}``
(`Request`). It is answered once, by id: ``{"type": REPLY, "id", "content": {...}}`` with the
reply's bytes as the message's buffers (`Reply`; a widget's adds ``kernel_ms``, the time computing it
took), or ``{"type": REPLY_ERROR, "id", "message"}`` (`ErrorReply`) saying what went wrong in words a
person can act on. The renderer asks for layers, blocks, top keys, logits, the lens, value norms,
queries and keys, and the flow (`HANDLERS`, the table of what Python answers from a trace); a widget
that reruns its model adds REQUEST_ABLATE, REQUEST_EDIT and REQUEST_RESTORE to the table it answers
with (`reply_to(..., handlers=)`, see `tx_magic.widget.reruns`); Python asks a view for a picture
(REQUEST_EXPORT, see `tx_magic.widget.exports`); js/src/rpc.ts is the other end.

Why our own channel and not anywidget's experimental ``command`` / ``invoke`` (0.11), although
this one is shaped like it (an id-keyed request, one reply with buffers):

- ``invoke`` fails a request after 3 s by default, with the AbortSignal's bare "signal timed out".
  The kernel reads a view's messages only between cells, so a request made while a cell runs
  waits for that cell: ours waits 30 s (60 s for the lens) and then says so ("no reply from
  Python for ... after 30 s: is the kernel busy, restarted or gone?").
- A command that raises sends no reply at all (anywidget has no error form), so the view would
  wait out its timeout instead of showing why; here every failure is an ErrorReply, shown in the view.
- Commands go one way, view to kernel; exports go the other way, kernel to view, and need the same
  envelope, ids and error form (a view over the 10 MiB a browser may send says so in an ErrorReply).
- ``invoke`` adds a listener per call; one channel per view routes every reply through one.
- Commands are methods of the widget class; the answers here come from the trace, in this layer
  below the widget (the widget's one message handler calls `reply_to`), and are tested without one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core.errors import TxMagicError
from ..core.trace import Trace
from .blocks import block_parts, encode_block, encode_layer, encode_topk, integer, topk_parts
from .internals import encode_logits
from .schema import (
    DTYPE,
    MAX_LENS_POSITIONS,
    REPLY,
    REPLY_ERROR,
    REQUEST_BLOCK,
    REQUEST_FLOW,
    REQUEST_LAYER,
    REQUEST_LENS,
    REQUEST_LOGITS,
    REQUEST_QUERIES_KEYS,
    REQUEST_TOPK,
    REQUEST_VALUE_NORMS,
    BlockHeader,
    BlockRequest,
    ErrorReply,
    FlowReply,
    FlowRequest,
    LayerRequest,
    LensReply,
    LensRequest,
    LogitsHeader,
    LogitsRequest,
    QueriesKeysReply,
    QueriesKeysRequest,
    Reply,
    ReplyContent,
    Request,
    RequestError,
    TopKHeader,
    TopKRequest,
    ValueNormsReply,
    ValueNormsRequest,
)
from .valueflow import encode_flow, encode_queries_keys, encode_value_norms

#: A handler's answer: the reply's content and its buffers.
Answer = tuple[ReplyContent, list[bytes]]
#: A request type's handler: the trace and the request's payload (untrusted JSON: each handler checks it).
Handler = Callable[[Trace, Any], Answer]


def _kind(trace: Trace, payload: Mapping[str, object]) -> str:
    kind = payload.get("kind")
    if not isinstance(kind, str):
        raise RequestError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
    return kind


def answer_layer(trace: Trace, payload: LayerRequest) -> tuple[BlockHeader, list[bytes]]:
    """A whole layer at a dtype and pool (raised to a streamed kind's pool): buffers [data] or [data, scale]."""
    pool = payload.get("pool")
    return block_parts(encode_layer(trace, _kind(trace, payload), integer(payload.get("layer"), "layer"),
                                    payload.get("dtype", DTYPE), None if pool is None else integer(pool, "pool")))


def answer_block(trace: Trace, payload: BlockRequest) -> tuple[BlockHeader, list[bytes]]:
    """Exact float32 weights of a window, at most MAX_BLOCK_CELLS per head: buffers [data]."""
    q0, q1, k0, k1 = (integer(payload.get(name), name) for name in ("q0", "q1", "k0", "k1"))
    return block_parts(encode_block(trace, _kind(trace, payload), integer(payload.get("layer"), "layer"),
                                    q0, q1, k0, k1))


def answer_topk(trace: Trace, payload: TopKRequest) -> tuple[TopKHeader, list[bytes]]:
    """Each query row's largest weights and their keys: buffers [index, data]."""
    return topk_parts(encode_topk(trace, _kind(trace, payload), integer(payload.get("layer"), "layer")))


def answer_logits(trace: Trace, payload: LogitsRequest) -> tuple[LogitsHeader, list[bytes]]:
    """Another position's full-vocabulary logits: buffers [float32 (V,)]."""
    logits = encode_logits(trace, integer(payload.get("position"), "position"))
    return {"position": logits["position"]}, [logits["data"]]


def answer_lens(trace: Trace, payload: LensRequest) -> tuple[LensReply, list[bytes]]:
    """The lens at the positions asked for: buffers [int32 ids, float32 probs], each (L+1, positions, k)."""
    if trace.lens is None:
        raise RequestError("this trace has no logit lens (only causal LMs have one)")
    positions = payload.get("positions")
    if not isinstance(positions, list) or not positions or len(positions) > MAX_LENS_POSITIONS:
        raise RequestError(f"positions must be a list of 1..{MAX_LENS_POSITIONS} token positions")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
        raise RequestError("positions must be whole numbers")
    top = trace.lens.top(positions)
    ids, probs = np.ascontiguousarray(top.ids, dtype="<i4"), np.ascontiguousarray(top.probs, dtype="<f4")
    return {"positions": [int(p) for p in top.positions], "k": int(ids.shape[-1])}, [ids.tobytes(), probs.tobytes()]


def answer_value_norms(trace: Trace, payload: ValueNormsRequest) -> tuple[ValueNormsReply, list[bytes]]:
    """Value norms of a kind (one more pass of the model the first time): buffers [norms, totals, thumbnails]."""
    return encode_value_norms(trace, _kind(trace, payload))


def answer_queries_keys(trace: Trace, payload: QueriesKeysRequest) -> tuple[QueriesKeysReply, list[bytes]]:
    """One query's vector and every key's, per head, of one layer: buffers [q, k] (+ before the rotation)."""
    return encode_queries_keys(trace, _kind(trace, payload), integer(payload.get("layer"), "layer"),
                               integer(payload.get("query"), "query"))


def answer_flow(trace: Trace, payload: FlowRequest) -> tuple[FlowReply, list[bytes]]:
    """The information-flow routes into a token (or every kept edge): no buffers."""
    threshold = payload.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise RequestError(f"threshold must be a number, got {threshold!r}")
    return encode_flow(trace, _kind(trace, payload), integer(payload.get("token"), "token"), float(threshold)), []


#: What Python answers, by request type (js/src/rpc.ts's REQUESTS is the renderer's side of this table).
HANDLERS: dict[str, Handler] = {
    REQUEST_LAYER: answer_layer,
    REQUEST_BLOCK: answer_block,
    REQUEST_TOPK: answer_topk,
    REQUEST_LOGITS: answer_logits,
    REQUEST_LENS: answer_lens,
    REQUEST_VALUE_NORMS: answer_value_norms,
    REQUEST_QUERIES_KEYS: answer_queries_keys,
    REQUEST_FLOW: answer_flow,
}


def reply_to(trace: Trace, message: object, handlers: Mapping[str, Handler] = HANDLERS,
             timed: bool = False) -> tuple[Reply | ErrorReply, list[bytes]] | None:
    """The reply (message, buffers) to a request of the renderer's, or None when `message` is none of
    `handlers`' requests (default `HANDLERS`). A request that cannot be answered gets an ErrorReply saying why.
    `timed`: a Reply says in ``kernel_ms`` how long computing it took (the renderer's link meter reads it)."""
    if not isinstance(message, Mapping) or message.get("type") not in handlers:
        return None
    start = time.perf_counter()
    request_id = str(message.get("id", ""))
    payload = message.get("payload")
    try:
        if not isinstance(payload, Mapping):
            raise RequestError(f"a {message['type']} request needs a payload object, got {payload!r}")
        content, buffers = handlers[message["type"]](trace, payload)
    except (RequestError, TxMagicError, KeyError, IndexError, TypeError, ValueError) as exc:  # cannot be answered
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return error(request_id, str(text)), []
    except Exception as exc:  # noqa: BLE001 - anything else too: the view shows it instead of waiting out its timeout
        return error(request_id, f"{type(exc).__name__}: {exc}"), []
    reply: Reply = {"type": REPLY, "id": request_id, "content": content}
    if timed:
        reply["kernel_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return reply, buffers


def error(request_id: str, message: str) -> ErrorReply:
    """The error reply to request `request_id`."""
    return {"type": REPLY_ERROR, "id": request_id, "message": message}


def request(type_: str, payload: Mapping[str, object], request_id: str | None = None) -> Request:
    """A request of Python's to a view (REQUEST_EXPORT), with a new id (or `request_id`) its reply will carry."""
    return {"type": type_, "id": request_id or uuid.uuid4().hex, "payload": payload}


def is_reply(message: object) -> bool:
    """Whether `message` answers a request (a Reply or an ErrorReply with an id)."""
    return isinstance(message, Mapping) and message.get("type") in (REPLY, REPLY_ERROR) and "id" in message
