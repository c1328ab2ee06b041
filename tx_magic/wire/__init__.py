"""The wire between Python and the renderer: one schema (`tx_magic.wire.schema`, mirrored in
js/src/wire-schema.ts), the encoders of what the widget's traits carry, the eager plan, the one
request/reply channel (`tx_magic.wire.rpc`), and decoders for tests and reports.

The names below are the wire's vocabulary; each module holds one step.
"""

from __future__ import annotations

from .blocks import (
                     block_nbytes,
                     block_parts,
                     encode_block,
                     encode_layer,
                     encode_topk,
                     integer,
                     kind_pool,
                     layer_layout,
                     layer_nbytes,
                     layer_pool,
                     layout_cells,
                     make_block,
                     pooled_layer,
                     quantize,
                     topk_parts,
                     topk_width,
)
from .decode import as_base64, decode_block, decode_layer, decode_stats, decode_thumbnails, decode_topk
from .internals import encode_image, encode_internals, encode_logits
from .interventions import encode_intervention, encode_patching, encode_reruns, read_ablate, read_edit
from .masks import mask_type
from .meta import encode_meta, thumbnails
from .panels import encode_census, encode_comparison, encode_training
from .plan import FIRST_VIEW_BUDGET, Block, Eager, eager_layers, eager_plan, encode_eager, meta_nbytes, plan_nbytes
from .rpc import HANDLERS, is_reply, reply_to, request
from .schema import *  # noqa: F403 - the constants and TypedDicts are the schema's public names
from .schema import __all__ as _schema_names
from .valueflow import analyses, encode_flow, encode_queries_keys, encode_value_norms
from .views import encode_views, register_view, unregister_view

__all__ = [
    "FIRST_VIEW_BUDGET", "HANDLERS", "Block", "Eager", "analyses", "as_base64", "block_nbytes", "block_parts",
    "decode_block",
    "decode_layer",
    "encode_flow", "encode_queries_keys", "encode_value_norms",
    "decode_stats", "decode_thumbnails", "decode_topk", "eager_layers", "eager_plan", "encode_block", "encode_eager",
    "encode_image", "encode_internals", "encode_intervention", "encode_patching", "encode_reruns", "read_ablate",
    "read_edit", "encode_layer", "encode_logits", "encode_meta", "encode_topk", "integer",
    "is_reply", "kind_pool", "layer_layout", "layer_nbytes", "layer_pool", "layout_cells", "make_block", "mask_type",
    "meta_nbytes", "plan_nbytes",
    "pooled_layer", "quantize", "reply_to", "request", "thumbnails", "topk_parts", "topk_width", *_schema_names,
    "encode_census", "encode_comparison", "encode_training", "encode_views", "register_view", "unregister_view",
]
