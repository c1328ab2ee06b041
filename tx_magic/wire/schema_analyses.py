"""The wire's requests beyond the weights, declared with the rest of the schema (`tx_magic.wire.schema`
imports this section; js/src/wire-schema.ts mirrors it): value norms for the value-weighted views, one
query's query and key vectors (the Q/K tab), the information-flow graph (the Flow tab), and which of them
a kind can answer (``Meta["analyses"]``).
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from evaluated annotations.

import sys

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import TypedDict

REQUEST_VALUE_NORMS = "get_value_norms"
REQUEST_QUERIES_KEYS = "get_queries_keys"
REQUEST_FLOW = "get_flow"
#: What `Meta.analyses` may offer per kind: value weighting, queries and keys, the information flow.
ANALYSIS_VALUE = "value"
ANALYSIS_QK = "qk"
ANALYSIS_FLOW = "flow"
#: Edge types of a flow reply, by the index its edges use (`tx_magic.analysis.EDGE_TYPES`).
FLOW_EDGE_TYPES = ("attention", "head", "residual", "mlp", "mlp_residual")
#: Most edges one REQUEST_FLOW reply holds (a lower threshold beyond it is refused).
MAX_FLOW_EDGES = 200_000
#: Smallest threshold a REQUEST_FLOW may ask for.
MIN_FLOW_THRESHOLD = 0.005


class ValueNormsRequest(TypedDict):
    kind: str


class ValueNormsReply(TypedDict):
    """Buffers [norms, totals, thumbnails]: float32 (layers, heads, keys) ``||f_h(x_j)||``; float32 (layers,
    heads, queries) each row's ``sum_j a_ij ||f_h(x_j)||``, so a value-weighted weight is
    ``a_ij * norms[j] / totals[i]`` for any cell; uint8 (layers, heads, T, T) thumbnails of the value-weighted
    rows, as `Thumbnails` are of the weights."""

    kind: str
    layers: int
    heads: int
    queries: int
    keys: int
    thumbnail_size: int


class QueriesKeysRequest(TypedDict):
    kind: str
    layer: int
    query: int


class QueriesKeysReply(TypedDict):
    """Buffers [q, k] (+ [q, k] before the rotation when ``rotary``): float32 q (heads, dim) of the query,
    k (kv_heads, keys, dim); query head h reads key head ``groups[h]``. Score = q . k * scale."""

    kind: str
    layer: int
    query: int
    heads: int
    kv_heads: int
    keys: int
    dim: int
    scale: float
    groups: list[int]
    rotary: bool


class FlowRequest(TypedDict):
    kind: str
    #: The token whose routes to draw, or -1 for every token's kept edges.
    token: int
    threshold: float


class FlowReply(TypedDict):
    """``edges``: [layer, type (index into FLOW_EDGE_TYPES), head (-1: none), source, target, weight] each."""

    kind: str
    token: int
    threshold: float
    layers: int
    edges: list[list[float]]


__all__ = [
    "ANALYSIS_FLOW", "ANALYSIS_QK", "ANALYSIS_VALUE", "FLOW_EDGE_TYPES", "MAX_FLOW_EDGES", "MIN_FLOW_THRESHOLD",
    "REQUEST_FLOW", "REQUEST_QUERIES_KEYS", "REQUEST_VALUE_NORMS", "FlowReply", "FlowRequest", "QueriesKeysReply",
    "QueriesKeysRequest", "ValueNormsReply", "ValueNormsRequest",
]
