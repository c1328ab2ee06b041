"""Errors tx_magic raises for bad input: short messages that say what to do.

The magic shows them as one line (no traceback); the API raises them as they are.
"""

from __future__ import annotations


class TxMagicError(Exception):
    """Base of every error tx_magic raises on purpose for bad input."""


class EmptyTextError(TxMagicError, ValueError):
    """The text to explain is empty or only whitespace."""


class ModelLoadError(TxMagicError):
    """A model could not be found or loaded."""


class NoAttentionError(TxMagicError):
    """The model gave no attention weights."""


class MissingTargetError(TxMagicError, ValueError):
    """An encoder-decoder model was given no target text."""
