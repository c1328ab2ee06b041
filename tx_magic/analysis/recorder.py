"""`tx_magic.Recorder`: follow a model's attention through training.

    rec = tx_magic.Recorder(model, tokenizer, "7 3 9 1", target="7 3 9 1")
    for step in range(steps):
        ...                       # the user's training step
        if step % 50 == 0:
            rec.snapshot(step)    # one capture: no gradients, the model's mode and hooks put back
    rec.show()                    # a step slider, the attention at each step, the fluctuation per layer

**Fluctuation** (``rec.fluctuation(kind)``, snapshots x layers): how much each layer's attention moved
since the snapshot before, as the total variation distance between the two attention rows,
``0.5 * sum_k |p_now - p_before|``, averaged over the layer's heads and query rows. 0 means the layer's
attention did not change; 1 means every row moved all its weight elsewhere. Seed 2 reads strong
fluctuation as a sign of unstable training: per layer, because layers settle at different times (the
layers near the input usually first), and as a distance between consecutive snapshots, because a
training run that is settling shows it falling towards 0 while an unstable one keeps it high or makes
it jump. The first snapshot has none (NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..capturing import capture
from ..core import extensions
from ..core.errors import OptionError
from ..core.trace import Trace
from .patterns import library, pattern_scores
from .stats import STAT_NAMES
from .table import head_summary
from .userstats import registered_statistics, user_stats


class Recorder:
    """Snapshots of one input's attention during training; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, text: str, *, target: str | None = None, pair: str | None = None,
                 max_tokens: int | None = None, name: str | None = None) -> None:
        self.model, self.tokenizer, self.text = model, tokenizer, text
        self._options: dict[str, Any] = {"target": target, "pair": pair, "max_tokens": max_tokens, "name": name}
        self.steps: list[int] = []
        self.traces: list[Trace] = []

    def snapshot(self, step: int | None = None) -> Trace:
        """Capture the text now (under `step`, default the number of snapshots so far) and keep it.

        One forward pass without gradients (the model's gradients, train/eval mode and hooks are as
        they were afterwards); hidden states are not kept, only attention.
        """
        step = len(self.steps) if step is None else int(step)
        if self.steps and step <= self.steps[-1]:
            raise OptionError(f"steps must increase: step {step} after step {self.steps[-1]}")
        trace = capture(self.model, self.tokenizer, self.text, **self._options)
        trace.internals = None  # attention is what is followed; hidden states would dominate the memory
        if self.traces and any(trace.shape(k) != self.traces[0].shape(k) for k in trace.kinds):
            raise OptionError("the snapshot's attention has another shape than the first one's: one model, one text")
        self.steps.append(step)
        self.traces.append(trace)
        return trace

    @property
    def kinds(self) -> tuple[str, ...]:
        self._need()
        return self.traces[0].kinds

    def fluctuation(self, kind: str | None = None) -> np.ndarray:
        """(snapshots, layers) float64: each layer's mean total-variation change since the snapshot before."""
        kind = self._kind(kind)
        layers = self.traces[0].shape(kind)[0]
        out = np.full((len(self.traces), layers), np.nan)
        for s in range(1, len(self.traces)):
            now = self.traces[s].attention(kind).astype(np.float64)
            before = self.traces[s - 1].attention(kind).astype(np.float64)
            distance = 0.5 * np.abs(np.nan_to_num(now) - np.nan_to_num(before)).sum(-1)  # (L, H, Q)
            live = (np.nan_to_num(now).sum(-1) > 0) | (np.nan_to_num(before).sum(-1) > 0)
            out[s] = np.where(live, distance, 0).sum((1, 2)) / np.maximum(live.sum((1, 2)), 1)
        return out

    def series(self, name: str, kind: str | None = None) -> np.ndarray:
        """A statistic (built-in or registered) or a pattern's score at every snapshot: (snapshots, layers, heads)."""
        kind = self._kind(kind)
        patterns = {p.name: p for p in library()}
        if name in STAT_NAMES:
            return np.stack([head_summary(t, kind)[0][name] for t in self.traces])
        if name in registered_statistics():
            return np.stack([user_stats(t, kind)[name] for t in self.traces])
        if name in patterns:
            return np.stack([pattern_scores(t, kind, [patterns[name]])[name] for t in self.traces])
        known = [*STAT_NAMES, *registered_statistics()]
        raise OptionError(f"no statistic or pattern {name!r}: statistics {known}, patterns {list(patterns)}")

    def show(self, **options: Any) -> Any:
        """The widget of the last snapshot with a Training tab: a step slider and the fluctuation per layer."""
        self._need()
        return extensions.call("show_recorder", self, **options)

    def _need(self) -> None:
        if not self.traces:
            raise OptionError("no snapshot yet: call rec.snapshot(step) in the training loop first")

    def _kind(self, kind: str | None) -> str:
        self._need()
        kind = kind or self.traces[0].kinds[0]
        if kind not in self.traces[0].kinds:
            raise OptionError(f"kind must be one of {list(self.traces[0].kinds)}, got {kind!r}")
        return kind

    def __repr__(self) -> str:
        return f"Recorder({len(self.traces)} snapshots, steps {self.steps[:1]}..{self.steps[-1:]})"
