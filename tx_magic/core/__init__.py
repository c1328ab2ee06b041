"""The data model every layer shares: `Trace`, `Tokens`, how attention is stored, tile math, errors.

Nothing here runs a model, analyses, encodes or draws; everything else imports from here.
"""

from __future__ import annotations

from .attention import AttentionStore, DenseAttention, ReducedAttention
from .errors import TxMagicError
from .tokens import Tokens
from .trace import KIND_SEQUENCES, Trace

__all__ = ["KIND_SEQUENCES", "AttentionStore", "DenseAttention", "ReducedAttention", "Tokens", "Trace", "TxMagicError"]
