"""The wire format between Python and the renderer, declared once (mirrored in js/src/wire.ts).

A trace crosses as two synced traits plus on-demand messages:

``_meta`` (JSON)::

    {"version": WIRE_VERSION, "model": str, "warnings": [str],
     "sequences": {name: {"text": [str], "special": [bool], "segment": [int], "ids": [int]}},
     "kinds": [{"name": kind, "layers": L, "heads": H,
                "queries": seq name, "keys": seq name, "mask": MASK_*}]}

``_layers``: a list of layer blocks, the layers sent eagerly (all of them while they fit in
EAGER_BUDGET bytes, else the first layer of each kind)::

    {"kind": str, "layer": int, "dtype": "float32", "shape": [H, Q, K], "data": bytes}

``data`` is little-endian float32, row-major (head, query, key): the exact probabilities.
For an ``explicit`` mask, ``mask_data`` in the kind holds Q*K uint8 (1 = allowed).

Any other layer is fetched with a custom message from the renderer,
``{"type": REQUEST_LAYER, "kind": k, "layer": l}``, answered by
``{"type": REPLY_LAYER, <block without data>}`` with ``data`` as the message's one buffer,
or ``{"type": REPLY_ERROR, "kind", "layer", "message"}``.

Python asks the renderer for a picture of the current view with
``{"type": REQUEST_EXPORT, "id": str, "format": "png" | "svg"}``; a view answers
``{"type": REPLY_EXPORT, "id", "format"}`` with the file's bytes as the message's one buffer
(at most EXPORT_MAX_BYTES: browser -> kernel messages are capped at 10 MiB), or
``{"type": REPLY_EXPORT_ERROR, "id", "message"}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .trace import KIND_SEQUENCES, Trace

WIRE_VERSION = 1
EAGER_BUDGET = 8 * 1024 * 1024
#: Largest layer block sent to a browser: beyond it the widget refuses and says how to shorten.
MAX_LAYER_BYTES = 256 * 1024 * 1024
DTYPE = "float32"

MASK_NONE = "none"
MASK_CAUSAL = "causal"
MASK_EXPLICIT = "explicit"

REQUEST_LAYER = "get_layer"
REPLY_LAYER = "layer"
REPLY_ERROR = "error"

REQUEST_EXPORT = "export"
REPLY_EXPORT = "exported"
REPLY_EXPORT_ERROR = "export_error"
EXPORT_FORMATS = ("png", "svg")
#: Largest export a view sends to the kernel (the server drops browser messages over 10 MiB).
EXPORT_MAX_BYTES = 9 * 1024 * 1024

#: Keys of each JSON object on the wire; tests check js/src/wire.ts declares the same.
META_KEYS = ("version", "model", "warnings", "sequences", "kinds")
SEQUENCE_KEYS = ("text", "special", "segment", "ids")
KIND_KEYS = ("name", "layers", "heads", "queries", "keys", "mask")
BLOCK_KEYS = ("kind", "layer", "dtype", "shape", "data")


def mask_type(trace: Trace, kind: str) -> tuple[str, np.ndarray | None]:
    """Classify the kind's mask as none, causal (lower triangle) or explicit."""
    if kind not in trace.masks:
        return MASK_NONE, None
    mask = trace.masks[kind]
    if mask.all():
        return MASK_NONE, None
    q, k = mask.shape
    if q == k and np.array_equal(mask, np.tril(np.ones((q, k), dtype=bool))):
        return MASK_CAUSAL, None
    return MASK_EXPLICIT, mask


def encode_meta(trace: Trace) -> dict[str, Any]:
    """The ``_meta`` trait: everything but the attention values."""
    kinds = []
    for kind in trace.kinds:
        layers, heads, _, _ = trace.shape(kind)
        queries, keys = KIND_SEQUENCES[kind]
        mtype, mask = mask_type(trace, kind)
        entry: dict[str, Any] = {
            "name": kind, "layers": layers, "heads": heads,
            "queries": queries, "keys": keys, "mask": mtype,
        }
        if mask is not None:
            entry["mask_data"] = np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
        kinds.append(entry)
    used = {s for kind in trace.kinds for s in KIND_SEQUENCES[kind]}
    return {
        "version": WIRE_VERSION,
        "model": trace.model_name,
        "warnings": list(trace.warnings),
        "sequences": {
            name: {"text": list(seq.text), "special": list(seq.special), "segment": list(seq.segment),
                   "ids": list(seq.ids)}
            for name, seq in trace.sequences.items() if name in used
        },
        "kinds": kinds,
    }


def encode_layer(trace: Trace, kind: str, layer: int) -> dict[str, Any]:
    """One layer block: (heads, queries, keys) float32 as bytes."""
    layers = trace.shape(kind)[0]
    if not 0 <= layer < layers:
        raise IndexError(f"{kind} attention has layers 0..{layers - 1}, not {layer}")
    block = np.ascontiguousarray(trace.layer(kind, layer), dtype="<f4")
    return {"kind": kind, "layer": int(layer), "dtype": DTYPE, "shape": list(block.shape), "data": block.tobytes()}


def layer_nbytes(trace: Trace, kind: str) -> int:
    _, heads, q, k = trace.shape(kind)
    return heads * q * k * 4


def check_sendable(trace: Trace, limit: int | None = None) -> None:
    """Refuse traces whose layers are too big for a browser, saying how many tokens would fit."""
    from .errors import TxMagicError

    limit = MAX_LAYER_BYTES if limit is None else limit
    for kind in trace.kinds:
        size = layer_nbytes(trace, kind)
        if size > limit:
            _, heads, q, k = trace.shape(kind)
            fits = int((limit / (heads * 4)) ** 0.5)
            raise TxMagicError(
                f"One {kind} layer of this {q}-token trace is {size / 1024 ** 2:.0f} MB, more than a browser view "
                f"takes ({limit / 1024 ** 2:.0f} MB): show up to {fits} tokens (max_tokens={fits}, or --max-tokens "
                f"{fits}), or read the trace in Python (trace.stats(), trace.block(...))."
            )


def eager_layers(trace: Trace, budget: int = EAGER_BUDGET) -> list[dict[str, Any]]:
    """The blocks sent with the widget: every layer if they fit in `budget`, else layer 0 per kind."""
    total = sum(layer_nbytes(trace, k) * trace.shape(k)[0] for k in trace.kinds)
    if total <= budget:
        return [encode_layer(trace, k, l) for k in trace.kinds for l in range(trace.shape(k)[0])]
    return [encode_layer(trace, k, 0) for k in trace.kinds]


def decode_layer(block: dict[str, Any]) -> np.ndarray:
    """Inverse of `encode_layer` (used by tests and reports)."""
    if block["dtype"] != DTYPE:
        raise ValueError(f"unknown dtype {block['dtype']!r}")
    return np.frombuffer(bytes(block["data"]), dtype="<f4").reshape(block["shape"])
