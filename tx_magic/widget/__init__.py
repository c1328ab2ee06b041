"""The anywidget front: `AttentionWidget` shows a `Trace` with the bundled renderer, keeps the
selection in synced traits, serves layers on request and saves pictures of the views."""

from __future__ import annotations

from .exports import ExportError
from .widget import AttentionWidget

__all__ = ["AttentionWidget", "ExportError"]
