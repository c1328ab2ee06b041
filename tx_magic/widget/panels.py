"""Widgets of the pattern library: a census (`Census.show()`), a comparison (`Comparison.show()`) and a
training run (`Recorder.show()`). Each is the attention widget with one more tab and the data it needs
(`tx_magic.wire.panels`); the analysis layer reaches them through `tx_magic.core.extensions`."""

from __future__ import annotations

from typing import Any

import traitlets

from .. import wire
from ..analysis import Census, Comparison, Recorder
from .widget import AttentionWidget


class CensusWidget(AttentionWidget):
    """The views on one input of a census, with a Census tab: layers x heads coloured by label; clicking a
    head shows it on the input that shows it best and lists the others, which show on a click too
    (``census_input``: the input shown, set from the tab or from Python)."""

    _census = traitlets.Dict().tag(sync=True)
    #: The input of the census the views show (its index in ``census.inputs``).
    census_input = traitlets.Int(0).tag(sync=True)

    def __init__(self, census: Census, *, start: int | None = None, **kwargs: Any) -> None:
        """`start`: the input shown first (default: the best input of the most labelled heads)."""
        index = census.representative(1)[0] if start is None else int(start)
        self.census = census
        super().__init__(census.trace(index), kind=census.kind, **kwargs)
        self._census = dict(wire.encode_census(census, index))
        self.census_input = index

    @traitlets.validate("census_input")
    def _check_input(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if not 0 <= value < len(self.census.inputs):
            raise traitlets.TraitError(f"census_input must be in 0..{len(self.census.inputs) - 1}, got {value}")
        return value

    @traitlets.observe("census_input")
    def _show_input(self, change: dict[str, Any]) -> None:
        if self._census.get("current") == change["new"]:
            return
        with self.hold_sync():
            self.show_trace(self.census.trace(change["new"]))
            self._census = {**self._census, "current": change["new"]}


class CompareWidget(AttentionWidget):
    """A's views, with a Compare tab: A, B and A - B (diverging colours) and per-head statistic deltas."""

    _compare = traitlets.Dict().tag(sync=True)

    def __init__(self, comparison: Comparison, **kwargs: Any) -> None:
        self.comparison = comparison
        super().__init__(comparison.a, kind=kwargs.pop("kind", comparison.kinds[0]), **kwargs)
        self._compare = dict(wire.encode_comparison(comparison))


class RecorderWidget(AttentionWidget):
    """The last snapshot's views, with a Training tab: a step slider, the attention at each step and the
    fluctuation per layer."""

    _training = traitlets.Dict().tag(sync=True)
    #: The snapshot the Training tab shows (an index into ``recorder.steps``).
    step = traitlets.Int(0).tag(sync=True)

    def __init__(self, recorder: Recorder, **kwargs: Any) -> None:
        self.recorder = recorder
        super().__init__(recorder.traces[-1], **kwargs)
        self._training = dict(wire.encode_training(recorder))
        self.step = len(recorder.traces) - 1
