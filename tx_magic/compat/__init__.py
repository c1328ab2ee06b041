"""Drop-in replacements for bertviz's and CircuitsVis's calls: change the import, keep the call.

    from tx_magic.compat import head_view, model_view                    # bertviz
    from tx_magic.compat import attention_heads, attention_patterns      # CircuitsVis

Each shows tx_magic's widget; arguments tx_magic cannot honour give a warning naming them.
"""

from __future__ import annotations

from .bertviz import head_view, model_view
from .circuitsvis import CircuitsView, attention_heads, attention_pattern, attention_patterns
from .common import CompatError, ReportPage

__all__ = ["CircuitsView", "CompatError", "ReportPage", "attention_heads", "attention_pattern", "attention_patterns",
           "head_view", "model_view"]
