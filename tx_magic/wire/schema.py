"""The wire format between Python and the renderer, declared once (mirrored in js/src/wire.ts).

Version 2 (long inputs, issue #4). A trace crosses as two synced traits plus on-demand messages.

``_meta`` (JSON)::

    {"version": WIRE_VERSION, "model": str, "warnings": [str],
     "sequences": {name: {"text": [str], "special": [bool], "segment": [int], "ids": [int]}},
     "kinds": [{"name": kind, "layers": L, "heads": H, "queries": seq name, "keys": seq name,
                "mask": MASK_*, "streamed": bool, "pool": p, "thumbnails": {"size": T, "data": bytes},
                ["mask_data": bytes], ["stats": {name: bytes}, "head_types": [[str]]]}]}

- ``streamed``: the kind was captured reduced (`tx_magic.streamed`): whole layers exist only
  max-pooled over tiles of at least ``pool`` x ``pool`` tokens; exact cells come from REQUEST_BLOCK.
- ``thumbnails``: uint8 (layer, head, T, T), round(255 * max over each tile), T = min(THUMBNAIL_SIZE, Q, K);
  the tiles split queries and keys as evenly as ``numpy.array_split`` does.
- ``mask_data`` (explicit masks only): Q*K uint8, 1 = allowed.
- ``stats`` and ``head_types`` (streamed kinds only: the renderer cannot compute them without the
  weights): float32 (layer, head) per name of `tx_magic.analysis.STAT_NAMES`, and each head's label
  ("" for none).

``_layers``: the blocks sent eagerly (see `eager_layers`), value blocks and top-k blocks::

    {"kind", "layer", "dtype": "float32" | "uint8", "shape": [H, R, C], "pool": p, "q0", "k0",
     "data": bytes, ["scale": bytes]}
    {"kind", "layer", "dtype": "topk", "shape": [H, Q, k], "index": bytes, "data": bytes}

A value block covers queries q0 .. min(Q, q0 + R*p) and keys k0 .. min(K, k0 + C*p), row-major
(head, row, column); with p > 1 each value is the max over a p x p tile (the last may be partial).
float32 data is little-endian. uint8: value = byte / 255 * scale[head, row], with ``scale`` float32
(H, R), the row's max: the absolute error is at most scale / 510, i.e. <= 0.2 % of the row's largest
weight (and <= 1/510 ~ 0.002). A top-k block holds each query row's k largest weights (float32) and
their key indices (int32), largest first; rows with fewer than k allowed keys are padded with weight 0.

Requests from the renderer (custom messages; each may carry ``"id"``, echoed in the reply):

- ``{"type": REQUEST_LAYER, "kind", "layer", "dtype", "pool"}`` -> ``{"type": REPLY_LAYER, <block
  without data/scale>}`` with buffers [data] or [data, scale]; the reply's pool is what was given
  (a streamed kind's pool is raised to a multiple of its ``pool``);
- ``{"type": REQUEST_BLOCK, "kind", "layer", "q0", "q1", "k0", "k1"}`` -> ``{"type": REPLY_BLOCK, ...}``,
  exact float32 at pool 1, buffers [data]; at most MAX_BLOCK_CELLS cells per head;
- ``{"type": REQUEST_TOPK, "kind", "layer"}`` -> ``{"type": REPLY_TOPK, ...}``, buffers [index, data];
- anything wrong -> ``{"type": REPLY_ERROR, "id", "kind", "layer", "message"}``.

Python asks the renderer for a picture of the current view with
``{"type": REQUEST_EXPORT, "id": str, "format": "png" | "svg"}``; a view answers
``{"type": REPLY_EXPORT, "id", "format"}`` with the file's bytes as the message's one buffer
(at most EXPORT_MAX_BYTES: browser -> kernel messages are capped at 10 MiB), or
``{"type": REPLY_EXPORT_ERROR, "id", "message"}``.
"""

from __future__ import annotations

from ..core.attention import DENSE_TOP_K
from ..core.tiles import THUMBNAIL_SIZE


WIRE_VERSION = 2
#: Bytes of binary data (values, scales, top-k, thumbnails, statistics, masks) sent with the widget.
EAGER_BUDGET = 8 * 1024 * 1024
#: Largest whole-layer reply (Python only): beyond it a coarser pool must be asked for.
MAX_LAYER_BYTES = 256 * 1024 * 1024
#: Largest exact block (cells per head) one REQUEST_BLOCK gets.
MAX_BLOCK_CELLS = 1024 * 1024
#: Keys per query row in a top-k block computed from full weights.
TOP_K = DENSE_TOP_K

DTYPE = "float32"
DTYPE_UINT8 = "uint8"
DTYPE_TOPK = "topk"

MASK_NONE = "none"
MASK_CAUSAL = "causal"
MASK_EXPLICIT = "explicit"

REQUEST_LAYER = "get_layer"
REPLY_LAYER = "layer"
REQUEST_BLOCK = "get_block"
REPLY_BLOCK = "block"
REQUEST_TOPK = "get_topk"
REPLY_TOPK = "topk"
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
KIND_KEYS = ("name", "layers", "heads", "queries", "keys", "mask", "streamed", "pool", "thumbnails")
BLOCK_KEYS = ("kind", "layer", "dtype", "shape", "pool", "q0", "k0", "data")
TOPK_KEYS = ("kind", "layer", "dtype", "shape", "index", "data")
THUMBNAIL_KEYS = ("size", "data")


class RequestError(ValueError):
    """A request the kernel cannot answer; the message says why and what to ask instead."""



# ---------------------------------------------------------------------------------------------
# Model internals: hidden states, logit lens, next-token logits, generation (issue #6).
# Mirrored by the "model internals" section at the end of js/src/wire.ts.
#
# The widget's ``_internals`` trait (JSON, {} when the trace has none)::
#
#     {"hidden": {"layers": L, "tokens": n, "norms": bytes, "cosines": bytes,    # float32 (L+1, n)
#                 "last_normed": bool},            # the last row is after the final norm
#      "lens": {"layers": L, "tokens": n, "k": k},    # the lens exists; its cells come on request
#      "logits": {"position": n-1, "data": bytes},     # float32 (V,): exact logits after the last token
#      "vocab": [str],                                 # display string of each token id (V of them)
#      "generation": {"prompt": p, "steps": s, "sample": bool}}   # tokens p.. were generated
#
# Each part is present only when captured. Row 0 of hidden/lens is the embeddings, row l the
# output of layer l; cosines[0] is NaN. Other positions' logits come on request:
# ``{"type": REQUEST_LOGITS, "position": i}`` -> ``{"type": REPLY_LOGITS, "position": i}`` with
# the float32 (V,) logits as the one buffer, or ``{"type": REPLY_LOGITS_ERROR, "position", "message"}``.
# The lens is computed when the lens tab asks for the positions it shows (at most
# MAX_LENS_POSITIONS a request): ``{"type": REQUEST_LENS, "id": str, "positions": [int]}`` ->
# ``{"type": REPLY_LENS, "id", "positions", "k"}`` with two buffers, int32 ids and float32
# probabilities, each (L+1, len(positions), k) row-major; or ``{"type": REPLY_LENS_ERROR, "id", "message"}``.
# ---------------------------------------------------------------------------------------------

REQUEST_LOGITS = "get_logits"
REPLY_LOGITS = "logits"
REPLY_LOGITS_ERROR = "logits_error"
REQUEST_LENS = "get_lens"
REPLY_LENS = "lens"
REPLY_LENS_ERROR = "lens_error"
MAX_LENS_POSITIONS = 256
INTERNALS_KEYS = ("hidden", "lens", "logits", "vocab", "generation")
HIDDEN_KEYS = ("layers", "tokens", "norms", "cosines", "last_normed")
LENS_KEYS = ("layers", "tokens", "k")
LENS_REPLY_KEYS = ("type", "id", "positions", "k")
LOGITS_KEYS = ("position", "data")
GENERATION_KEYS = ("prompt", "steps", "sample")



# ---------------------------------------------------------------------------------------------
# Images (issue #6): the picture a ViT-style model saw, so the widget can draw attention over it.
# Mirrored by the "images" section at the end of js/src/wire.ts.
#
# ``_meta["image"]``, present only when the trace has an image (`tx_magic.images.PatchImage`)::
#
#     {"png": bytes, "width": W, "height": H, "rows": R, "cols": C, "sequence": "input", "first": f}
#
# ``png`` is the picture as resized for the model (W x H pixels); tokens ``first`` ..
# ``first + R*C - 1`` of ``sequence`` are its patches, row by row over an R x C grid.
# ---------------------------------------------------------------------------------------------

META_IMAGE = "image"
IMAGE_KEYS = ("png", "width", "height", "rows", "cols", "sequence", "first")

__all__ = ["THUMBNAIL_SIZE", "WIRE_VERSION", "EAGER_BUDGET", "MAX_LAYER_BYTES", "MAX_BLOCK_CELLS", "TOP_K", "DTYPE", "DTYPE_UINT8", "DTYPE_TOPK", "MASK_NONE", "MASK_CAUSAL", "MASK_EXPLICIT", "REQUEST_LAYER", "REPLY_LAYER", "REQUEST_BLOCK", "REPLY_BLOCK", "REQUEST_TOPK", "REPLY_TOPK", "REPLY_ERROR", "REQUEST_EXPORT", "REPLY_EXPORT", "REPLY_EXPORT_ERROR", "EXPORT_FORMATS", "EXPORT_MAX_BYTES", "META_KEYS", "SEQUENCE_KEYS", "KIND_KEYS", "BLOCK_KEYS", "TOPK_KEYS", "THUMBNAIL_KEYS", "REQUEST_LOGITS", "REPLY_LOGITS", "REPLY_LOGITS_ERROR", "REQUEST_LENS", "REPLY_LENS", "REPLY_LENS_ERROR", "MAX_LENS_POSITIONS", "INTERNALS_KEYS", "HIDDEN_KEYS", "LENS_KEYS", "LENS_REPLY_KEYS", "LOGITS_KEYS", "GENERATION_KEYS", "META_IMAGE", "IMAGE_KEYS", "RequestError"]
