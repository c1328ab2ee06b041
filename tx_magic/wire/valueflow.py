"""What the renderer asks for beyond the weights (`tx_magic.analysis.values`, `tx_magic.analysis.flow`):
value norms for the value-weighted views, one query's query and key vectors for the Q/K tab, and the
information-flow graph for the Flow tab. Each is computed by the kernel when asked (one more pass of
the model, the first time), so the widget's eager payload does not grow.
"""

from __future__ import annotations

import numpy as np

from ..analysis import EDGE_TYPES, flow_edges, queries_keys, weighted_rows
from ..analysis.values import kind_of, layer_of, per_key_norms
from ..core.trace import Trace
from .schema import (
    ANALYSIS_FLOW,
    ANALYSIS_QK,
    ANALYSIS_VALUE,
    FLOW_EDGE_TYPES,
    MAX_FLOW_EDGES,
    MIN_FLOW_THRESHOLD,
    THUMBNAIL_SIZE,
    FlowReply,
    QueriesKeysReply,
    RequestError,
    ValueNormsReply,
)

assert tuple(EDGE_TYPES) == FLOW_EDGE_TYPES, "the wire's edge types are the analysis's"


def analyses(trace: Trace) -> dict[str, list[str]]:
    """Per kind, what the kernel can compute on request (`Meta.analyses`); kinds with nothing are left out."""
    out: dict[str, list[str]] = {}
    for kind in trace.kinds:
        queries, keys = trace.tokens(kind)
        if trace.is_streamed(kind):
            offered = [ANALYSIS_QK]
        elif trace.replay is None:
            offered = []
        else:
            offered = [ANALYSIS_VALUE, ANALYSIS_QK] + ([ANALYSIS_FLOW] if queries is keys else [])
        if offered:
            out[kind] = offered
    return out


def value_thumbnails(weighted: np.ndarray, size: int) -> np.ndarray:
    """uint8 (heads, size, size) of one layer's value-weighted rows (heads, Q, K): round(255 * the max of each
    tile), tiles split as numpy.array_split does (as the weights' thumbnails)."""
    from ..core.tiles import split_matrix

    tiles = split_matrix(weighted, size)
    codes: np.ndarray = np.rint(np.clip(np.nan_to_num(tiles), 0.0, 1.0) * 255).astype(np.uint8)
    return codes


def encode_value_norms(trace: Trace, kind: str) -> tuple[ValueNormsReply, list[bytes]]:
    """The reply to REQUEST_VALUE_NORMS: buffers [norms (L, H, K) f32, totals (L, H, Q) f32, thumbnails u8].
    One layer at a time, so it holds no more than a layer's weights beside the trace's."""
    kind = kind_of(trace, kind)
    if trace.is_streamed(kind):
        raise RequestError("value weighting needs every weight of a layer; this long input was captured reduced. "
                           "Capture fewer tokens (max_tokens=...) to weigh attention by value.")
    norms = per_key_norms(trace, kind)
    layers, heads, q, k = trace.shape(kind)
    size = max(1, min(THUMBNAIL_SIZE, q, k))
    totals = np.empty((layers, heads, q), "<f4")
    thumbs = np.empty((layers, heads, size, size), np.uint8)
    for layer in range(layers):
        weights = trace.layer(kind, layer)
        totals[layer] = np.einsum("hqk,hk->hq", weights, norms[layer], dtype=np.float64)
        thumbs[layer] = value_thumbnails(weighted_rows(weights, norms[layer]), size)
    header: ValueNormsReply = {"kind": kind, "layers": layers, "heads": heads, "queries": q, "keys": k,
                               "thumbnail_size": size}
    return header, [np.ascontiguousarray(norms, "<f4").tobytes(), totals.tobytes(), thumbs.tobytes()]


def encode_queries_keys(trace: Trace, kind: str, layer: int, query: int) -> tuple[QueriesKeysReply, list[bytes]]:
    """The reply to REQUEST_QUERIES_KEYS: buffers [q (H, d), k (Hkv, K, d)] (+ the same before the rotation)."""
    kind = kind_of(trace, kind)
    layer = layer_of(trace, kind, layer)
    n = trace.shape(kind)[2]
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < n:
        raise RequestError(f"query must be a token position in 0..{n - 1}, got {query!r}")
    pair = queries_keys(trace, kind, layer)
    heads, keys, dim = pair.k.shape
    kv = heads // pair.groups
    own = slice(None, None, pair.groups)  # one query head per key/value head: its keys, not repeated
    parts = [pair.q[:, query], pair.k[own]]
    if pair.unrotated is not None:
        parts += [pair.unrotated[0][:, query], pair.unrotated[1][own]]
    header: QueriesKeysReply = {
        "kind": kind, "layer": layer, "query": query, "heads": heads, "kv_heads": kv, "keys": keys, "dim": dim,
        "scale": float(pair.scale), "groups": [h // pair.groups for h in range(heads)],
        "rotary": pair.unrotated is not None,
    }
    return header, [np.ascontiguousarray(p, "<f4").tobytes() for p in parts]


def encode_flow(trace: Trace, kind: str, token: int, threshold: float) -> FlowReply:
    """The reply to REQUEST_FLOW: the routes into `token` (-1: every kept edge) at or above `threshold`."""
    kind = kind_of(trace, kind)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
            not MIN_FLOW_THRESHOLD <= threshold < 1:
        raise RequestError(f"threshold must be a number in {MIN_FLOW_THRESHOLD}..1, got {threshold!r}")
    if isinstance(token, bool) or not isinstance(token, int):
        raise RequestError(f"token must be a token position or -1 for every token, got {token!r}")
    edges = flow_edges(trace, kind, None if token == -1 else token, float(threshold))
    if len(edges) > MAX_FLOW_EDGES:
        raise RequestError(f"the flow graph has {len(edges)} edges at threshold {threshold}, more than the "
                           f"{MAX_FLOW_EDGES} one reply holds: raise the threshold or pick one token")
    code = {name: i for i, name in enumerate(FLOW_EDGE_TYPES)}
    return {"kind": kind, "token": token, "threshold": float(threshold), "layers": trace.shape(kind)[0],
            "edges": [[e.layer, code[e.type], e.head, e.source, e.target, round(e.weight, 6)] for e in edges]}
