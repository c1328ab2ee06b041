"""The wire between Python and the renderer: one schema (`tx_magic.wire.schema`, mirrored in
js/src/wire.ts), the encoders of what the widget's traits carry, the eager plan, the replies to the
renderer's requests, and decoders for tests and reports.

The names below are the wire's vocabulary; each module holds one step.
"""

from __future__ import annotations

from .blocks import (block_nbytes, encode_block, encode_layer, encode_topk, kind_pool, layer_nbytes, layer_pool,
                     make_block, pooled_layer, quantize, topk_width)
from .decode import decode_block, decode_layer, decode_stats, decode_thumbnails, decode_topk
from .internals import encode_image, encode_internals, encode_logits
from .meta import encode_meta, mask_type, thumbnails
from .plan import Eager, eager_layers, eager_plan, encode_eager, meta_nbytes, plan_nbytes
from .rpc import answer, answer_lens, answer_logits, reply_to
from .schema import *  # noqa: F403 - the constants are the schema's public names
from .schema import __all__ as _schema_names

__all__ = [
    "Eager", "answer", "answer_lens", "answer_logits", "block_nbytes", "decode_block", "decode_layer", "decode_stats",
    "decode_thumbnails", "decode_topk", "eager_layers", "eager_plan", "encode_block", "encode_eager", "encode_image",
    "encode_internals", "encode_layer", "encode_logits", "encode_meta", "encode_topk", "kind_pool", "layer_nbytes",
    "layer_pool", "make_block", "mask_type", "meta_nbytes", "plan_nbytes", "pooled_layer", "quantize", "reply_to",
    "thumbnails", "topk_width", *_schema_names,
]
