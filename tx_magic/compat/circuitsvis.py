"""Drop-in `attention_heads`, `attention_patterns` and `attention_pattern` with CircuitsVis's signatures.

    import circuitsvis as cv                                         # before
    cv.attention.attention_heads(attention=pattern, tokens=str_tokens)

    from tx_magic.compat import attention_heads                      # after
    attention_heads(attention=pattern, tokens=str_tokens)

`attention` is (heads, dest, src) as CircuitsVis takes it (a TransformerLens ``cache["pattern", layer]``),
also with a batch of one in front, or (layers, heads, dest, src) for every layer at once. The result
shows as tx_magic's widget when it ends a cell; ``str(view)`` (or ``view.show_code()``) is a
self-contained page that opens offline. ``mask_upper_tri`` is honoured (True: causal, hatched above
the diagonal; False: nothing masked; None: masked where the weights are zero above it). Colour
scale and head names (``max_value``, ``min_value``, ``negative_color``, ``positive_color``,
``attention_head_names``, ``show_axis_labels``) give a warning naming them: tx_magic's colours are its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..capturing.adapters import trace_of
from ..core.checks import causal_mask
from ..core.trace import Trace
from ..widget import AttentionWidget
from .common import ReportPage, report_page, token_strings, warn_trace, warn_unhonoured, widget_for

#: What tx_magic does instead of each CircuitsVis styling argument.
_STYLING = {
    "attention_head_names": "heads are numbered 0..H-1.",
    "max_value": "weights are coloured on tx_magic's fixed scale, 0 to 1 (square root).",
    "min_value": "weights are coloured on tx_magic's fixed scale, 0 to 1 (square root).",
    "negative_color": "tx_magic's own colours are used (they follow the light or dark theme).",
    "positive_color": "tx_magic's own colours are used (they follow the light or dark theme).",
    "show_axis_labels": "the matrix always labels its tokens.",
}


class CircuitsView:
    """What a drop-in CircuitsVis call returns: tx_magic's widget when a notebook shows it (``.widget``), and a
    self-contained page as text (``str(view)``, ``view.show_code()``; ``view.page()`` as IPython HTML)."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._widget: AttentionWidget | None = None

    @property
    def widget(self) -> AttentionWidget:
        """The widget (made the first time it is asked for or shown)."""
        if self._widget is None:
            self._widget = widget_for(self.trace)
        return self._widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def page(self) -> ReportPage:
        """The self-contained page, as an `IPython.display.HTML` a notebook shows in a frame."""
        return report_page(self.trace, title="tx_magic attention")

    def show_code(self) -> str:
        """The self-contained page's HTML source (no CDN: it opens offline)."""
        return str(self.page().data)

    def __html__(self) -> str:
        return self.page()._repr_html_()

    def __str__(self) -> str:
        return self.show_code()

    def __repr__(self) -> str:
        layers, heads, q, k = self.trace.shape()
        return f"<tx_magic CircuitsView: {layers} layer(s) x {heads} heads, {q} x {k} tokens>"


def attention_heads(attention: Any, tokens: Sequence[str], attention_head_names: Sequence[str] | None = None,
                    max_value: float | None = None, min_value: float | None = None, negative_color: str | None = None,
                    positive_color: str | None = None, mask_upper_tri: bool | None = None) -> CircuitsView:
    """CircuitsVis's attention heads: every head of `attention` (heads, dest, src) over `tokens`, in the widget."""
    styling = {"attention_head_names": attention_head_names, "max_value": max_value, "min_value": min_value,
               "negative_color": negative_color, "positive_color": positive_color}
    return _view("attention_heads", attention, tokens, mask_upper_tri, styling)


def attention_patterns(tokens: Sequence[str], attention: Any) -> CircuitsView:
    """CircuitsVis's (deprecated) attention patterns: the same view as `attention_heads`."""
    return _view("attention_patterns", attention, tokens, None, {})


def attention_pattern(tokens: Sequence[str], attention: Any, max_value: float | None = None,
                      min_value: float | None = None, negative_color: str | None = None,
                      show_axis_labels: bool | None = None, positive_color: str | None = None,
                      mask_upper_tri: bool | None = None) -> CircuitsView:
    """CircuitsVis's single attention pattern (dest, src), as tx_magic's widget of one head."""
    styling = {"max_value": max_value, "min_value": min_value, "negative_color": negative_color,
               "show_axis_labels": show_axis_labels, "positive_color": positive_color}
    return _view("attention_pattern", attention, tokens, mask_upper_tri, styling)


def _view(function: str, attention: Any, tokens: Any, mask_upper_tri: bool | None,
          styling: dict[str, Any]) -> CircuitsView:
    trace = trace_of(attention, token_strings(tokens, "tokens", prettify=False), name=function)
    if mask_upper_tri:
        trace.masks["self"] = causal_mask(trace.shape()[-1])  # self-attention: square
    elif mask_upper_tri is not None:
        trace.masks.pop("self", None)
    warn_unhonoured(function, {name: _STYLING[name] for name, value in styling.items() if value is not None})
    warn_trace(trace)
    return CircuitsView(trace)


__all__ = ["CircuitsView", "attention_heads", "attention_pattern", "attention_patterns"]
