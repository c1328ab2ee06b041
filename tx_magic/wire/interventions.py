"""What crosses about interventions and patching: ``_meta["intervention"]`` (what was done to the run
shown), the widget's ``_reruns`` (whether its kernel reruns, the unintervened run's last logits) and
``_patching`` (effects of patching, by one or more methods), and the rerun requests' payloads read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..analysis.patching import Patching, rank_correlation
from ..core.intervention import ABLATIONS, Intervention, intervention_of
from ..core.trace import Trace
from .blocks import integer
from .internals import encode_logits
from .schema import HeadRef, InterventionInfo, PatchingInfo, PatchingResult, RequestError, Reruns, WeightEdit


def encode_intervention(intervention: Intervention) -> InterventionInfo:
    """``_meta["intervention"]`` of a trace whose run was intervened on."""
    ablate: list[HeadRef] = [{"kind": k, "layer": layer, "head": h} for k, layer, h in intervention.ablate]
    edit: list[WeightEdit] = [{"kind": k, "layer": layer, "head": h, "query": q, "key": key, "weight": float(w)}
                              for k, layer, h, q, key, w in intervention.edit]
    return {"label": intervention.label(), "ablate": ablate, "ablation": intervention.ablation, "edit": edit}


def encode_reruns(ablation: str, baseline: Trace | None) -> Reruns:
    """The ``_reruns`` trait of a widget that reruns its model; `baseline`: the unintervened run, while an
    intervention is shown (its last logits go along for the Next token tab's before and after)."""
    out: Reruns = {"ablation": ablation}
    if baseline is not None and baseline.logits is not None:
        out["baseline"] = encode_logits(baseline, len(baseline.tokens()[0]) - 1)
    return out


def encode_patching(results: Sequence[Patching]) -> PatchingInfo:
    """The ``_patching`` trait: `results` of the same sites (e.g. exact and gradient), effects as (rows, cols)."""
    first = results[0]
    for other in results[1:]:
        if (other.by, other.kind, other.effects.shape) != (first.by, first.kind, first.effects.shape):
            raise ValueError("patching results shown together must patch the same sites (by, kind, shape)")
    rows = first.effects.shape[0]
    cols = 1 if first.effects.ndim == 1 else first.effects.shape[1]
    columns = (["attention"] if first.by == "layer" else list(first.tokens) if first.by == "position"
               else [str(h) for h in range(cols)])
    encoded: list[PatchingResult] = [
        {"method": r.method, "effects": np.ascontiguousarray(r.effects, dtype="<f4").reshape(rows, cols).tobytes(),
         "raw": np.ascontiguousarray(r.raw, dtype="<f4").reshape(rows, cols).tobytes(), "seconds": float(r.seconds)}
        for r in results]
    info: PatchingInfo = {
        "by": first.by, "kind": first.kind, "metric": first.metric, "metric_clean": float(first.metric_clean),
        "metric_corrupt": float(first.metric_corrupt), "rows": int(rows), "cols": int(cols), "columns": columns,
        "corrupted": list(first.corrupted_tokens), "results": encoded,
    }
    if len(results) > 1:
        correlation = rank_correlation(results[0], results[1])
        if np.isfinite(correlation):
            info["correlation"] = float(correlation)
    return info


def _entries(payload: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = payload.get(key)
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise RequestError(f"{key} must be a list of objects, got {items!r}")
    return items


def _kind(entry: Mapping[str, Any]) -> str:
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise RequestError(f"each head needs its attention kind, got {kind!r}")
    return kind


def read_ablate(payload: Mapping[str, Any], current: Intervention | None) -> Intervention | None:
    """The intervention a REQUEST_ABLATE asks for: exactly its heads ablated, `current`'s edits kept."""
    ablation = payload.get("ablation", "zero")
    if ablation not in ABLATIONS:
        raise RequestError(f"ablation must be one of {list(ABLATIONS)}, got {ablation!r}")
    heads = [(_kind(e), integer(e.get("layer"), "layer"), integer(e.get("head"), "head"))
             for e in _entries(payload, "heads")]
    return intervention_of(heads, str(ablation), current.edit if current else None)


def read_edit(payload: Mapping[str, Any], current: Intervention | None) -> Intervention | None:
    """The intervention a REQUEST_EDIT asks for: exactly its edits, `current`'s ablations kept."""
    edits = []
    for e in _entries(payload, "edits"):
        weight = e.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise RequestError(f"weight must be a number, got {weight!r}")
        edits.append((_kind(e), *(integer(e.get(k), k) for k in ("layer", "head", "query", "key")), float(weight)))
    return intervention_of(current.ablate if current else None, current.ablation if current else "zero", edits)
