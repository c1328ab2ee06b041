"""What the drop-in bertviz and CircuitsVis calls share: tokens as those libraries take them, one
warning per argument tx_magic cannot honour, and the self-contained page they can return."""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.display import HTML

from ..capturing.display import clean_marker, visible
from ..core.errors import TxMagicError
from ..core.tokens import Tokens
from ..core.trace import Trace
from ..report import render_html
from ..widget import AttentionWidget

#: Height of the frame a returned page is shown in inside a notebook, in CSS pixels.
FRAME_HEIGHT = 960


class CompatError(TxMagicError, ValueError):
    """A drop-in call given arguments its original would refuse too (no tokens, mixed kinds...)."""


class Unset:
    """The default of arguments whose mere presence matters (display_mode="dark" given or not)."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = Unset()


def token_strings(tokens: Any, what: str, *, prettify: bool) -> Tokens:
    """`Tokens` from a list of token strings: with `prettify`, tokenizer markers (Ġ, ▁, ##, </w>) made readable
    (bertviz's prettify_tokens); the strings as given are kept as ``raw``."""
    if tokens is None:
        raise CompatError(f"'{what}' is required")
    if isinstance(tokens, str):
        raise CompatError(f"'{what}' is one string: give a list of tokens, e.g. tokenizer.convert_ids_to_tokens(ids).")
    raw = [str(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
    shown = [visible(clean_marker(t.replace("</w>", ""))) for t in raw] if prettify else raw
    return Tokens(text=tuple(shown), raw=tuple(raw))


def with_segments(tokens: Tokens, sentence_b_start: int | None) -> Tokens:
    """`tokens` marked as text A before `sentence_b_start` and text B from it (the widget's Pair filter)."""
    if sentence_b_start is None:
        return tokens
    if not isinstance(sentence_b_start, int) or not 0 < sentence_b_start < len(tokens):
        raise CompatError(f"sentence_b_start must be a position inside the {len(tokens)} tokens, "
                          f"got {sentence_b_start!r}.")
    segment = tuple(0 if i < sentence_b_start else 1 for i in range(len(tokens)))
    return Tokens(text=tokens.text, ids=tokens.ids, raw=tokens.raw, special=tokens.special, segment=segment)


def warn_unhonoured(function: str, arguments: Mapping[str, str]) -> None:
    """One warning per argument given that tx_magic cannot honour, naming it and saying what it does instead."""
    for name, instead in arguments.items():
        warnings.warn(f"tx_magic.compat.{function}: {name} is not honoured; {instead}", UserWarning, stacklevel=4)


def check_heads(heads: Sequence[int] | None, n_heads: int, what: str = "heads") -> list[int] | None:
    """Head indices as a list, each checked to be one of the model's heads."""
    if heads is None:
        return None
    chosen = [int(h) for h in heads]
    bad = [h for h in chosen if not 0 <= h < n_heads]
    if bad or not chosen:
        raise CompatError(f"{what} must list heads in 0..{n_heads - 1}, got {list(heads)!r}.")
    return chosen


def warn_trace(trace: Trace) -> None:
    """What the conversion noticed (weights that are not probabilities, layers left out) as warnings."""
    for line in trace.warnings:
        warnings.warn(f"tx_magic: {line}", UserWarning, stacklevel=4)


def widget_for(trace: Trace, *, layer: int = 0, heads: Sequence[int] | None = None) -> AttentionWidget:
    """The widget opened on `layer` with `heads` selected."""
    widget = AttentionWidget(trace, layer=layer)
    if heads is not None:
        widget.heads = list(heads)
    return widget


class ReportPage(HTML):
    """A self-contained page (``.data``: the renderer, its CSS and the data; opens offline) that a notebook shows
    in a frame of its own, so the page's styles and scripts stay inside it. ``open(path, "w").write(page.data)``
    saves it, as with bertviz's ``html_action="return"``."""

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(str(self.data), quote=True)}" sandbox="allow-scripts" '
                f'style="width:100%;height:{FRAME_HEIGHT}px;border:0;resize:vertical" title="tx_magic attention">'
                "</iframe>")

    def __html__(self) -> str:
        return self._repr_html_()


def report_page(trace: Trace, *, layer: int = 0, heads: Sequence[int] | None = None,
                title: str | None = None) -> ReportPage:
    """The report page of `trace`, opening on `layer` with `heads` selected."""
    selection: dict[str, Any] = {"layer": layer}
    if heads is not None:
        selection["heads"] = list(heads)
    return ReportPage(render_html(trace, title=title, selection=selection))
