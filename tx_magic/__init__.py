"""tx_magic: see inside transformer models from a notebook.

    %load_ext tx_magic
    %explain The cat sat on the mat because it was tired.

or, from any Python: ``w = tx_magic.explain(model, tokenizer, text)``.
"""

from __future__ import annotations

from typing import Any

from . import analysis  # noqa: F401 - provides the analyses Trace offers (tx_magic.core.extensions)
from .analysis import Census, Comparison, Recorder, census, compare, register_pattern, register_statistic
from .analysis.patching import Patching, patch, rank_correlation
from .api import capture_text, explain, show
from .capturing import capture, load_model
from .core.errors import EmptyTextError, MissingTargetError, ModelLoadError, NoAttentionError, TxMagicError
from .core.tokens import Tokens
from .core.trace import Trace
from .core.version import __version__
from .report import save_html
from .widget import AttentionWidget, ExportError
from .wire import register_view

__all__ = [
    "AttentionWidget", "Census", "Comparison", "EmptyTextError", "ExportError", "MissingTargetError",
    "ModelLoadError", "NoAttentionError", "Patching", "Recorder", "Tokens", "Trace", "TxMagicError",
    "__version__", "capture", "capture_text", "census", "compare", "explain", "load_model", "patch",
    "rank_correlation", "register_pattern", "register_statistic", "register_view", "save_html", "show",
]


def load_ipython_extension(ipython: Any) -> None:  # IPython's hook
    """`%load_ext tx_magic`: register `%explain` / `%%explain`."""
    from .magics import ExplainMagics

    ipython.register_magics(ExplainMagics)


def unload_ipython_extension(ipython: Any) -> None:  # IPython's hook; `ipython` is its signature
    """Nothing to undo: magics stay registered until the kernel restarts."""
