"""tx_magic: see inside transformer models from a notebook.

    %load_ext tx_magic
    %explain The cat sat on the mat because it was tired.

or, from any Python: ``w = tx_magic.explain(model, tokenizer, text)``.
"""

from __future__ import annotations

from .api import capture_text, explain, show
from .capture import capture
from .errors import EmptyTextError, MissingTargetError, ModelLoadError, NoAttentionError, TxMagicError
from .load import load_model
from .trace import Tokens, Trace
from .report import save_html
from .widget import AttentionWidget, ExportError

__version__ = "0.1.0"

__all__ = [
    "AttentionWidget", "EmptyTextError", "ExportError", "MissingTargetError", "ModelLoadError", "NoAttentionError",
    "Tokens", "Trace", "TxMagicError", "capture", "capture_text", "explain", "load_model", "save_html", "show",
]


def load_ipython_extension(ipython):  # noqa: ANN001 - IPython's hook
    """`%load_ext tx_magic`: register `%explain` / `%%explain`."""
    from .magics import ExplainMagics

    ipython.register_magics(ExplainMagics)


def unload_ipython_extension(ipython):  # noqa: ANN001, ARG001 - IPython's hook
    """Nothing to undo: magics stay registered until the kernel restarts."""
