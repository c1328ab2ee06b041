"""The wire's objects for interventions and patching (part of `tx_magic.wire.schema`, which imports them:
the wire is still declared in one place per language; js/src/wire-schema.ts mirrors these too).

- ``_meta["intervention"]`` (`InterventionInfo`): heads ablated (`HeadRef`) and weights edited (`WeightEdit`);
- the widget's ``_reruns`` (`Reruns`) and ``_patching`` (`PatchingInfo` of `PatchingResult`);
- requests the renderer makes of a widget that reruns its model: REQUEST_ABLATE (`AblateRequest`),
  REQUEST_EDIT (`EditRequest`), REQUEST_RESTORE (`RestoreRequest`), each answered by a `RerunReply`.
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from evaluated annotations.

import sys

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired, TypedDict

REQUEST_ABLATE = "ablate"
REQUEST_EDIT = "edit"
REQUEST_RESTORE = "restore"
ABLATIONS = ("zero", "mean")


class HeadRef(TypedDict):
    """One head of one attention kind."""

    kind: str
    layer: int
    head: int


class WeightEdit(HeadRef):
    """Weight (query, key) of a head set to `weight`, the rest of its row rescaled to sum to 1."""

    query: int
    key: int
    weight: float


class InterventionInfo(TypedDict):
    """``_meta["intervention"]``: what was done to the run shown (the renderer's banner)."""

    label: str
    ablate: list[HeadRef]
    ablation: str
    edit: list[WeightEdit]


class Baseline(TypedDict):
    """The unintervened run's logits after `position`: float32 (V,)."""

    position: int
    data: bytes


class Reruns(TypedDict):
    """The widget's ``_reruns`` trait ({} when it cannot rerun its model): the kernel reruns the model on
    REQUEST_ABLATE / REQUEST_EDIT / REQUEST_RESTORE; while an intervention is shown, ``baseline`` holds the
    unintervened run's last logits (the Next token tab shows both)."""

    ablation: str
    baseline: NotRequired[Baseline]


class PatchingResult(TypedDict):
    """One method's patching: float32 (rows, cols) row-major effects and raw metrics."""

    method: str
    effects: bytes
    raw: bytes
    seconds: float


class PatchingInfo(TypedDict):
    """The widget's ``_patching`` trait ({} when none): effects of patching each layer (rows) and head,
    position or the whole attention block (cols), by one or more methods over the same sites."""

    by: str
    kind: str
    metric: str
    metric_clean: float
    metric_corrupt: float
    rows: int
    cols: int
    #: Column labels: heads ("0".."H-1"), the clean tokens (by position), or one ("attention", by layer).
    columns: list[str]
    corrupted: list[str]
    results: list[PatchingResult]
    #: Spearman rank correlation of the first two results' effects.
    correlation: NotRequired[float]


class AblateRequest(TypedDict):
    """Rerun with exactly these heads ablated (edits kept)."""

    heads: list[HeadRef]
    ablation: str


class EditRequest(TypedDict):
    """Rerun with exactly these weight edits (ablations kept)."""

    edits: list[WeightEdit]


class RestoreRequest(TypedDict):
    """Back to the model's own run."""


class RerunReply(TypedDict):
    label: str
