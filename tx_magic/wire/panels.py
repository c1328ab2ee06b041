"""The panels of the pattern library on the wire: a census, a comparison, a training run (`schema`'s
`CensusPanel`, `ComparisonPanel`, `TrainingPanel`), as widgets' traits and reports carry them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis import Census, Comparison, Recorder
from ..core.trace import Trace
from .meta import encode_meta, thumbnails
from .plan import eager_layers
from .schema import CENSUS_BEST, EAGER_BUDGET, CensusPanel, ComparisonPanel, TrainingKind, TrainingPanel


def _f4(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def _i4(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


def encode_census(census: Census, current: int, texts: Sequence[int] | None = None) -> CensusPanel:
    """`census` for the Census tab; `current` the input shown, `texts` (reports) its text per input."""
    layers, heads = census.shape
    names = census.patterns
    best = np.full((len(names), layers, heads, CENSUS_BEST), -1, dtype=np.int64)
    best_scores = np.full(best.shape, np.nan)
    for p, name in enumerate(names):
        scores = census.scores(name)
        for layer in range(layers):
            for head in range(heads):
                chosen = census.best_inputs(layer, head, name, CENSUS_BEST)
                best[p, layer, head, : len(chosen)] = chosen
                best_scores[p, layer, head, : len(chosen)] = scores[chosen, layer, head]
    lows, highs = zip(*(census.interval(n) for n in names), strict=True)
    panel: CensusPanel = {
        "kind": census.kind, "layers": layers, "heads": heads, "patterns": list(names),
        "thresholds": [census.threshold(n) for n in names],
        "means": _f4(np.stack([census.mean(n) for n in names])),
        "low": _f4(np.stack(lows)), "high": _f4(np.stack(highs)),
        "scored": _i4(np.stack([census.scored(n) for n in names])),
        "shown": _i4(np.stack([census.shown(n) for n in names])),
        "labels": [[str(x) for x in row] for row in census.labels],
        "evidence": [[str(census.evidence(layer, head) or "") for head in range(heads)] for layer in range(layers)],
        "inputs": [item.label for item in census.inputs], "probes": [item.probe for item in census.inputs],
        "best": _i4(best), "best_scores": _f4(best_scores), "current": int(current),
    }
    if texts is not None:
        panel["texts"] = [int(t) for t in texts]
    return panel


def encode_comparison(comparison: Comparison, budget: int = EAGER_BUDGET) -> ComparisonPanel:
    """`comparison` for the Compare tab: B's metadata and layers (within `budget`, all of it: B's are never
    fetched, so no first-view budget), the statistics' deltas."""
    b = comparison.b
    deltas = {kind: {name: _f4(va - vb) for name, (va, vb) in comparison.stat_deltas(kind).items()}
              for kind in comparison.kinds}
    return {
        "labels": list(comparison.labels), "cells": comparison.cells, "note": comparison.note,
        "meta": dict(encode_meta(b)), "layers": [dict(block) for block in eager_layers(b, budget, first_view=budget)],
        "deltas": deltas,
    }


def encode_training(recorder: Recorder) -> TrainingPanel:
    """`recorder`'s snapshots for the Training tab: each snapshot's thumbnails and the fluctuation per layer."""
    first: Trace = recorder.traces[0]
    kinds: list[TrainingKind] = []
    for kind in first.kinds:
        layers, heads = first.shape(kind)[:2]
        thumbs = np.stack([thumbnails(t, kind) for t in recorder.traces])
        codes = np.rint(np.clip(np.nan_to_num(thumbs), 0.0, 1.0) * 255.0).astype(np.uint8)
        kinds.append({"name": kind, "layers": layers, "heads": heads, "size": int(thumbs.shape[-1]),
                      "thumbnails": codes.tobytes(), "fluctuation": _f4(recorder.fluctuation(kind))})
    return {"steps": [int(s) for s in recorder.steps], "kinds": kinds}
