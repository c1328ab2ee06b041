"""The wire's panels of the pattern library and users' views, declared with the rest of the schema
(`tx_magic.wire.schema` imports them into its SCHEMA; js/src/wire-schema.ts mirrors them)."""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from evaluated annotations.

import sys

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired, TypedDict


# -- panels of the pattern library (census, comparison, training) and user views -------------------
# Optional traits of the widget (``_census``, ``_compare``, ``_training``, ``_views``) and parts of
# reports. Bytes: float32 and int32 little-endian, uint8; shapes in each field's comment.

class UserView(TypedDict):
    """A view registered with `tx_magic.register_view`: an ES module's source, drawn in its own tab."""

    name: str
    source: str


class CensusPanel(TypedDict):
    """A census (`tx_magic.census`): P patterns over L layers x H heads, N inputs."""

    kind: str
    layers: int
    heads: int
    patterns: list[str]
    thresholds: list[float]
    #: float32 (P, L, H) each: mean score, 2.5th and 97.5th percentiles over inputs.
    means: bytes
    low: bytes
    high: bytes
    #: int32 (P, L, H) each: inputs scored, inputs at or above the threshold.
    scored: bytes
    shown: bytes
    #: [layer][head] label ("" for none) and its evidence in words.
    labels: list[list[str]]
    evidence: list[list[str]]
    #: Per input: its label and the probe that made it.
    inputs: list[str]
    probes: list[str]
    #: int32 (P, L, H, CENSUS_BEST): the best inputs of each head per pattern, -1 padded; float32 their scores.
    best: bytes
    best_scores: bytes
    #: The input the views show now.
    current: int
    #: Reports: which text of the report holds each input (-1 for none); absent: every input can be shown.
    texts: NotRequired[list[int]]


class ComparisonPanel(TypedDict):
    """Two traces compared (`tx_magic.compare`): the widget's trace is A, B travels here."""

    labels: list[str]
    #: Cells line up (same shapes): A - B is drawn cell by cell.
    cells: bool
    note: str
    #: B's `Meta`.
    meta: dict[str, object]
    #: B's blocks, as `_layers` (within the eager budget).
    layers: list[dict[str, object]]
    #: Per kind, per statistic: float32 (L, H) of A - B.
    deltas: dict[str, dict[str, bytes]]


class TrainingKind(TypedDict):
    name: str
    layers: int
    heads: int
    #: Thumbnail side T; uint8 (S, L, H, T, T) as `Thumbnails`, one set per snapshot.
    size: int
    thumbnails: bytes
    #: float32 (S, L): each layer's fluctuation since the snapshot before (NaN for the first).
    fluctuation: bytes


class TrainingPanel(TypedDict):
    """Snapshots through training (`tx_magic.Recorder`)."""

    steps: list[int]
    kinds: list[TrainingKind]
