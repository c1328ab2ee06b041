"""The Python API behind the magic: `explain` runs a model and returns the widget."""

from __future__ import annotations

from typing import Any

from .capture import capture
from .load import load_model
from .trace import Trace
from .widget import AttentionWidget


def resolve_model(model: Any = None, tokenizer: Any = None) -> tuple[Any, Any, str | None]:
    """(model, tokenizer, display name) from a name/folder/None (loaded, cached) or live objects."""
    if model is None or isinstance(model, str):
        loaded = load_model(model)
        return loaded.model, tokenizer or loaded.tokenizer, loaded.name
    if tokenizer is None:
        from .errors import ModelLoadError

        raise ModelLoadError(
            f"Got a {type(model).__name__} object but no tokenizer: pass tokenizer=... (in the magic: -t NAME)."
        )
    return model, tokenizer, None


def explain(model: Any = None, tokenizer: Any = None, text: str = "", *, target: str | None = None,
            pair: str | None = None, layer: int = 0, head: int | None = None,
            max_tokens: int | None = None) -> AttentionWidget:
    """Run `model` on `text` and return the interactive attention widget.

    `model` is a hub id, a local folder, a loaded model object (with its `tokenizer`), or
    None for the embedded default (all-MiniLM-L6-v2). `target` is the decoder text of an
    encoder-decoder model; `pair` a second text encoded with `text` as a sentence pair.
    Works in any notebook front end and outside IPython.
    """
    trace = capture_text(model, tokenizer, text, target=target, pair=pair, max_tokens=max_tokens)
    return show(trace, layer=layer, head=head)


def capture_text(model: Any = None, tokenizer: Any = None, text: str = "", *, target: str | None = None,
                 pair: str | None = None, max_tokens: int | None = None) -> Trace:
    """`capture` that also accepts a model name or None (the default model)."""
    mod, tok, name = resolve_model(model, tokenizer)
    return capture(mod, tok, text, target=target, pair=pair, max_tokens=max_tokens, name=name)


def show(trace: Trace, *, kind: str | None = None, layer: int = 0, head: int | None = None) -> AttentionWidget:
    """The widget for an existing `Trace`."""
    return AttentionWidget(trace, kind=kind, layer=layer, head=head)
