"""Reports: one self-contained HTML file per run (or per batch), and a static preview for saved notebooks.

    from tx_magic.report import save_html
    save_html(widget_or_trace, "report.html")

The command line: ``tx-magic report --text "..." --output report.html`` (see `tx_magic.cli`).
"""

from __future__ import annotations

from ..core import extensions
from .budget import ReportTooLarge
from .census import render_census, save_census
from .fallback import fallback_html, heatmap_png
from .html import DEFAULT_MAX_BYTES, RenderedReport, ReportText, render_html, render_report, save_html

__all__ = ["DEFAULT_MAX_BYTES", "RenderedReport", "ReportText", "ReportTooLarge", "fallback_html", "heatmap_png",
           "render_census", "render_html", "render_report", "save_census", "save_html"]

extensions.provide("census_report", save_census)
