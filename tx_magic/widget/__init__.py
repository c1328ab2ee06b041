"""The anywidget front: `AttentionWidget` shows a `Trace` with the bundled renderer, keeps the
selection in synced traits, serves layers on request, reruns its model with interventions and saves
pictures of the views. Importing it provides `Patching.show` (`tx_magic.core.extensions`)."""

from __future__ import annotations

from typing import Any

from ..analysis.patching import Patching
from ..core import extensions
from .exports import ExportError
from .panels import CensusWidget, CompareWidget, RecorderWidget
from .widget import AttentionWidget


def show_patching(patching: Patching, *others: Patching, **options: Any) -> AttentionWidget:
    """The clean run's widget with an Effects tab of `patching` (and `others`, side by side)."""
    if patching.trace is None:
        raise ValueError("this Patching holds no trace of its clean run to show")
    return AttentionWidget(patching.trace, patching=[patching, *others], **options)


extensions.provide("show_patching", show_patching)

__all__ = ["AttentionWidget", "CensusWidget", "CompareWidget", "ExportError", "RecorderWidget"]

extensions.provide("show_census", CensusWidget)
extensions.provide("show_comparison", CompareWidget)
extensions.provide("show_recorder", RecorderWidget)
