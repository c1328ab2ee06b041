"""Analyse a `Trace`: per-head statistics, head-type labels, attention rollout, hidden states,
the logit lens and next-token logits.

Importing this package provides the analyses `Trace` offers as methods (``trace.stats()``,
``trace.rollout()``, ``trace.hidden``, ``trace.lens``, ``trace.logits``; see `tx_magic.core.extensions`).
"""

from __future__ import annotations

from ..core import extensions
from .hidden import hidden_of
from .labels import LABELS, head_types
from .lens import lens_of
from .nexttoken import logits_of
from .patching import Patching, patch, rank_correlation
from .reduced import streamed_stats
from .rollouts import attention_rollout, rollout
from .stats import STAT_NAMES, head_stats
from .table import head_summary, stats_records, stats_table

__all__ = ["LABELS", "STAT_NAMES", "Patching", "attention_rollout", "head_stats", "head_summary", "head_types",
           "patch", "rank_correlation", "rollout", "stats_records", "stats_table", "streamed_stats"]

extensions.provide("stats", stats_table)
extensions.provide("rollout", rollout)
extensions.provide("hidden", hidden_of)
extensions.provide("lens", lens_of)
extensions.provide("logits", logits_of)
