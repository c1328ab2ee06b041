"""Drop-in `head_view` and `model_view` with bertviz's signatures: change the import, keep the call.

    from bertviz import head_view, model_view           # before
    from tx_magic.compat import head_view, model_view   # after

    outputs = model(inputs, output_attentions=True)
    head_view(outputs.attentions, tokens)
    model_view(outputs.attentions, tokens, sentence_b_start=b)
    head_view(encoder_attention=..., decoder_attention=..., cross_attention=...,
              encoder_tokens=..., decoder_tokens=...)

Both show tx_magic's widget (`head_view`'s arcs and `model_view`'s layer x head grid are two views
of it, linked). ``html_action="return"`` gives an `IPython.display.HTML` holding a self-contained
page (tx_magic's report: no CDN, opens offline); ``html_action="widget"`` returns the widget itself.
Arguments tx_magic cannot honour (``display_mode``: the widget follows the notebook's theme;
``include_layers``: every layer is shown) give a warning naming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from IPython.display import display

from ..capturing.adapters import trace_of
from ..core.trace import Trace
from .common import (
    UNSET,
    CompatError,
    check_heads,
    report_page,
    token_strings,
    warn_trace,
    warn_unhonoured,
    widget_for,
    with_segments,
)

#: What ``html_action`` takes: bertviz's two, and tx_magic's widget.
HTML_ACTIONS = ("view", "return", "widget")
#: The token lists each encoder-decoder attention needs.
_TOKENS_NEEDED = {"encoder": ("encoder_tokens",), "decoder": ("decoder_tokens",),
                  "cross": ("encoder_tokens", "decoder_tokens")}


def head_view(attention: Any = None, tokens: Sequence[str] | None = None, sentence_b_start: int | None = None,
              prettify_tokens: bool = True, layer: int | None = None, heads: Sequence[int] | None = None,
              encoder_attention: Any = None, decoder_attention: Any = None, cross_attention: Any = None,
              encoder_tokens: Sequence[str] | None = None, decoder_tokens: Sequence[str] | None = None,
              include_layers: Sequence[int] | None = None, html_action: str = "view") -> Any:
    """bertviz's head view, as tx_magic's widget: every head's attention as arcs, with the matrix beside.

    `attention` is one tensor per layer, (1, heads, n, n) (``outputs.attentions``), or an array of any
    framework; `tokens` its tokens. Encoder-decoders: `encoder_attention`, `decoder_attention`,
    `cross_attention` with `encoder_tokens` and `decoder_tokens`. `sentence_b_start` marks a sentence pair
    (the widget's Pair filter), `layer` and `heads` are what it opens on. ``html_action``: "view" displays
    it (and returns None), "return" returns a self-contained `IPython.display.HTML` page, "widget" the widget.
    """
    return _view("head_view", attention, tokens, sentence_b_start, prettify_tokens, layer, heads,
                 encoder_attention, decoder_attention, cross_attention, encoder_tokens, decoder_tokens,
                 include_layers, html_action, display_mode=UNSET)


def model_view(attention: Any = None, tokens: Sequence[str] | None = None, sentence_b_start: int | None = None,
               prettify_tokens: bool = True, display_mode: str = UNSET, encoder_attention: Any = None,
               decoder_attention: Any = None, cross_attention: Any = None,
               encoder_tokens: Sequence[str] | None = None, decoder_tokens: Sequence[str] | None = None,
               include_layers: Sequence[int] | None = None, include_heads: Sequence[int] | None = None,
               html_action: str = "view") -> Any:
    """bertviz's model view, as tx_magic's widget: its Overview tab is the grid of every layer x head
    (click one to open it in the arc and matrix views).

    Arguments as `head_view`'s; `include_heads` are the heads selected (the arcs and the mean use them).
    """
    return _view("model_view", attention, tokens, sentence_b_start, prettify_tokens, None, include_heads,
                 encoder_attention, decoder_attention, cross_attention, encoder_tokens, decoder_tokens,
                 include_layers, html_action, display_mode=display_mode)


def _view(function: str, attention: Any, tokens: Any, sentence_b_start: int | None, prettify: bool,
          layer: int | None, heads: Sequence[int] | None, encoder_attention: Any, decoder_attention: Any,
          cross_attention: Any, encoder_tokens: Any, decoder_tokens: Any, include_layers: Sequence[int] | None,
          html_action: str, *, display_mode: Any) -> Any:
    if html_action not in HTML_ACTIONS:
        raise CompatError("'html_action' parameter must be 'view' or 'return' (or tx_magic's 'widget'), "
                          f"got {html_action!r}.")
    trace = bertviz_trace(attention, tokens, sentence_b_start, prettify, encoder_attention, decoder_attention,
                          cross_attention, encoder_tokens, decoder_tokens, name=function)
    layers, n_heads, _, _ = trace.shape()
    unhonoured: dict[str, str] = {}
    if display_mode is not UNSET:
        unhonoured["display_mode"] = "tx_magic follows the notebook's light or dark theme."
    if include_layers is not None:
        included = [int(i) for i in include_layers]
        if not included or any(not 0 <= i < layers for i in included):
            raise CompatError(f"include_layers must list layers in 0..{layers - 1}, got {list(include_layers)!r}.")
        if layer is not None and layer not in included:
            raise CompatError(f"Layer {layer} is not in include_layers: {included}")
        layer = included[0] if layer is None else layer
        unhonoured["include_layers"] = (f"every layer is shown (long inputs stay quick); it opens on layer {layer}.")
    layer = 0 if layer is None else int(layer)
    if not 0 <= layer < layers:
        raise CompatError(f"layer must be in 0..{layers - 1}, got {layer}.")
    chosen = check_heads(heads, n_heads, "include_heads" if function == "model_view" else "heads")
    warn_unhonoured(function, unhonoured)
    warn_trace(trace)
    if html_action == "return":
        return report_page(trace, layer=layer, heads=chosen, title=f"tx_magic: {function}")
    widget = widget_for(trace, layer=layer, heads=chosen)
    if html_action == "widget":
        return widget
    display(widget)
    return None


def bertviz_trace(attention: Any, tokens: Any, sentence_b_start: int | None, prettify: bool, encoder_attention: Any,
                  decoder_attention: Any, cross_attention: Any, encoder_tokens: Any, decoder_tokens: Any, *,
                  name: str = "head_view") -> Trace:
    """A `Trace` from bertviz's arguments, refusing what bertviz refuses (with its messages)."""
    cross_args = (encoder_attention, decoder_attention, cross_attention, encoder_tokens, decoder_tokens)
    if attention is not None:
        if isinstance(attention, (list, tuple)) and not attention:
            raise CompatError("The attention is empty (with transformers 5, outputs[-1] of an encoder is its empty "
                              "cross_attentions): pass outputs.attentions, from a run with output_attentions=True.")
        shown = token_strings(tokens, "tokens", prettify=prettify)
        if any(a is not None for a in cross_args):
            raise CompatError("If you specify 'attention' you may not specify any encoder-decoder arguments. This "
                              "argument is only for self-attention models.")
        shown = with_segments(shown, sentence_b_start)
        return trace_of(attention, shown, name=name)
    given = {k: v for k, v in (("encoder", encoder_attention), ("decoder", decoder_attention),
                               ("cross", cross_attention)) if v is not None}
    if not given:
        raise CompatError("You must specify at least one attention argument.")
    named = {"encoder_tokens": encoder_tokens, "decoder_tokens": decoder_tokens}
    for kind in given:  # bertviz's checks, in its order, with its messages
        for what in _TOKENS_NEEDED[kind]:
            if named[what] is None:
                raise CompatError(f"'{what}' required if '{kind}_attention' is not None")
    sequences: dict[str, Any] = {}
    for seq, what in (("source", "encoder_tokens"), ("target", "decoder_tokens")):
        if any(what in _TOKENS_NEEDED[kind] for kind in given):
            sequences[seq] = token_strings(named[what], what, prettify=prettify)
    return trace_of(given, sequences, name=name)
