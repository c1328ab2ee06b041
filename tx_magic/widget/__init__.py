"""The anywidget front: `AttentionWidget` shows a `Trace` with the bundled renderer, keeps the
selection in synced traits, serves layers on request and saves pictures of the views."""

from __future__ import annotations

from ..core import extensions
from .exports import ExportError
from .panels import CensusWidget, CompareWidget, RecorderWidget
from .widget import AttentionWidget

__all__ = ["AttentionWidget", "CensusWidget", "CompareWidget", "ExportError", "RecorderWidget"]

extensions.provide("show_census", CensusWidget)
extensions.provide("show_comparison", CompareWidget)
extensions.provide("show_recorder", RecorderWidget)
