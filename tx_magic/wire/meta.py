"""The ``_meta`` trait: tokens, kinds, masks, thumbnails (and, streamed, statistics) of a trace, and what
was done to its run (an intervention)."""

from __future__ import annotations

import numpy as np

from ..analysis import STAT_NAMES, head_summary, user_stats
from ..core.trace import KIND_SEQUENCES, Trace
from .internals import encode_image
from .interventions import encode_intervention
from .masks import mask_type
from .schema import THUMBNAIL_SIZE, WIRE_VERSION, Kind, Meta
from .valueflow import analyses


def encode_meta(trace: Trace) -> Meta:
    """The ``_meta`` trait: everything but the attention values (thumbnails and, streamed, statistics)."""
    kinds: list[Kind] = []
    for kind in trace.kinds:
        layers, heads, _, _ = trace.shape(kind)
        queries, keys = KIND_SEQUENCES[kind]
        mtype, mask = mask_type(trace, kind)
        store = trace.store(kind)
        thumbs = thumbnails(trace, kind)
        entry: Kind = {
            "name": kind, "layers": layers, "heads": heads,
            "queries": queries, "keys": keys, "mask": mtype,
            "streamed": bool(store.streamed), "pool": int(store.pool),
            "thumbnails": {"size": int(thumbs.shape[-1]), "data": _to_uint8(thumbs).tobytes()},
        }
        if mask is not None:
            entry["mask_data"] = np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
        if store.streamed:  # the renderer cannot compute these without the weights
            stats, labels = head_summary(trace, kind)
            entry["stats"] = {name: np.ascontiguousarray(stats[name], dtype="<f4").tobytes() for name in STAT_NAMES}
            entry["head_types"] = [[str(label) for label in row] for row in labels]
        registered = user_stats(trace, kind)  # computed here: the browser does not have the user's function
        if registered:
            entry["user_stats"] = {name: np.ascontiguousarray(v, dtype="<f4").tobytes()
                                   for name, v in registered.items()}
        kinds.append(entry)
    used = {s for kind in trace.kinds for s in KIND_SEQUENCES[kind]}
    meta: Meta = {
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
    image = encode_image(trace)
    if image is not None:
        meta["image"] = image
    offered = analyses(trace)
    if offered:
        meta["analyses"] = offered
    if trace.intervention is not None and not trace.intervention.empty:
        meta["intervention"] = encode_intervention(trace.intervention)
    return meta


def thumbnails(trace: Trace, kind: str) -> np.ndarray:
    """Each head's matrix max-pooled to T x T tiles (T = min(THUMBNAIL_SIZE, Q, K)): float32 (L, H, T, T)."""
    _, _, q, k = trace.shape(kind)
    tiles: np.ndarray = trace.store(kind).thumbnails_at(max(1, min(THUMBNAIL_SIZE, q, k)))
    return tiles


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as round(255 * p)."""
    v = np.clip(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    codes: np.ndarray = np.rint(v * 255.0).astype(np.uint8)
    return codes
