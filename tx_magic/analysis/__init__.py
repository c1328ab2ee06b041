"""Analyse a `Trace`: per-head statistics, head-type labels, attention rollout, hidden states,
the logit lens and next-token logits, value-weighted norms, queries and keys, information flow; and many
traces: the pattern library and its census, comparisons of two traces, snapshots through training, statistics
users register.

Importing this package provides the analyses `Trace` offers as methods (``trace.stats()``,
``trace.rollout()``, ``trace.hidden``, ``trace.lens``, ``trace.logits``, ``trace.value_norms()``,
``trace.queries_keys()``, ``trace.kv_groups()``, ``trace.flow()``; see `tx_magic.core.extensions`).
"""

from __future__ import annotations

from ..core import extensions
from .census import Census, Evidence, census
from .compare import Comparison, compare
from .flow import EDGE_TYPES, flow_edges, flow_table
from .hidden import hidden_of
from .labels import LABELS, head_types
from .lens import lens_of
from .nexttoken import logits_of
from .patching import Patching, patch, rank_correlation
from .patterns import Pattern, library, pattern_scores, register_pattern, unregister_pattern
from .recorder import Recorder
from .reduced import streamed_stats
from .rollouts import attention_rollout, rollout
from .stats import STAT_NAMES, head_stats
from .table import head_summary, stats_records, stats_table
from .userstats import register_statistic, registered_statistics, unregister_statistic, user_stats
from .values import QueriesKeys, kv_groups, queries_keys, value_norms, weighted_rows

__all__ = ["EDGE_TYPES", "LABELS", "STAT_NAMES", "Census", "Comparison", "Evidence", "Patching", "Pattern",
           "QueriesKeys", "Recorder", "attention_rollout", "census", "compare", "flow_edges", "flow_table",
           "head_stats", "head_summary", "head_types", "kv_groups", "library", "patch", "pattern_scores",
           "queries_keys", "rank_correlation", "register_pattern", "register_statistic",
           "registered_statistics", "rollout", "stats_records", "stats_table", "streamed_stats",
           "unregister_pattern", "unregister_statistic", "user_stats", "value_norms", "weighted_rows"]

extensions.provide("stats", stats_table)
extensions.provide("rollout", rollout)
extensions.provide("hidden", hidden_of)
extensions.provide("lens", lens_of)
extensions.provide("logits", logits_of)
extensions.provide("value_norms", value_norms)
extensions.provide("queries_keys", queries_keys)
extensions.provide("kv_groups", kv_groups)
extensions.provide("flow", flow_table)
