"""The report of a census (``Census.save_html(path)``, ``tx-magic census``): one self-contained page with the
Census tab and, as its texts, the inputs that show the most labelled heads best (each with every view)."""

from __future__ import annotations

import os
import pathlib

from .. import wire
from ..analysis import Census
from .html import DEFAULT_MAX_BYTES, RenderedReport, ReportText, render_report

#: Inputs a census report holds by default (each one is a full trace in the page).
DEFAULT_TEXTS = 6


def render_census(census: Census, *, texts: int = DEFAULT_TEXTS, title: str | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> RenderedReport:
    """The census report page: the Census tab over the `texts` most representative inputs."""
    chosen = census.representative(max(1, texts))
    where = [-1] * len(census.inputs)
    for position, index in enumerate(chosen):
        where[index] = position
    items = []
    for index in chosen:
        item = census.inputs[index]
        shown = item.text if item.text is not None else " ".join(census.tokens[index])
        items.append(ReportText(census.trace(index), shown, target=item.target, label=f"#{index} {item.label}"))
    panel = wire.encode_census(census, chosen[0], where)
    title = title or f"tx_magic census: {census.model_name}, {len(census.inputs)} inputs"
    return render_report(items, title=title, max_bytes=max_bytes, census=panel)


def save_census(census: Census, path: str | os.PathLike[str], *, texts: int = DEFAULT_TEXTS, title: str | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> pathlib.Path:
    """Write the census report to `path`; options as `render_census`."""
    out = pathlib.Path(path).expanduser()
    out.write_text(render_census(census, texts=texts, title=title, max_bytes=max_bytes).html, encoding="utf-8")
    return out
