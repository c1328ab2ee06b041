"""A widget that reruns its model: the user ablates a head (modifier-click), edits a weight or restores,
the kernel captures the run again with that intervention and the widget shows it.

`explain` gives the widget a `Rerun` (the capture it made, as a function of an intervention). The
renderer asks with REQUEST_ABLATE / REQUEST_EDIT / REQUEST_RESTORE over the widget's one channel; Python
code calls ``w.ablate(...)``, ``w.edit(...)``, ``w.restore()``. Each replaces the widget's data traits;
the selection stays. The unintervened run is kept, so the Next token tab shows before and after.
The model is put back after every rerun, also when it fails or is interrupted (the capture's own
guarantee); a failed rerun leaves the widget showing what it showed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .. import wire
from ..core.errors import OptionError
from ..core.intervention import Intervention, intervention_of
from ..core.trace import Trace

#: Captures the widget's input again with an intervention (None: as the model is).
Rerun = Callable[[Intervention | None], Trace]


class ShowsRuns(Protocol):
    """What reruns need of the widget: the trace it shows, and a way to show another run."""

    trace: Trace

    def show_trace(self, trace: Trace) -> None: ...


class Reruns:
    """The rerun side of one widget: its capture function, the unintervened run, the ablation mode."""

    def __init__(self, widget: ShowsRuns, rerun: Rerun, trace: Trace) -> None:
        # Weakly: the widget holds this, and a cycle would keep a closed widget's trace until the
        # cyclic garbage collector runs (gigabytes of weights, held for seconds to minutes).
        self._widget = weakref.ref(widget)
        self.rerun = rerun
        self.baseline: Trace | None = trace if trace.intervention is None else None
        self.ablation = trace.intervention.ablation if trace.intervention is not None else "zero"

    @property
    def widget(self) -> ShowsRuns:
        widget = self._widget()
        if widget is None:  # pragma: no cover - the widget owns this object
            raise RuntimeError("the widget of these reruns is gone")
        return widget

    def state(self) -> wire.Reruns:
        """The ``_reruns`` trait for the trace shown."""
        shown = self.widget.trace
        return wire.encode_reruns(self.ablation, self.original() if shown.intervention is not None else None)

    def original(self) -> Trace:
        """The unintervened run (captured again once if the widget started intervened)."""
        if self.baseline is None:
            self.baseline = self.rerun(None)
        return self.baseline

    def apply(self, intervention: Intervention | None) -> Trace:
        """Capture with `intervention` (None or empty: the model as it is) and show that run."""
        if intervention is not None and not intervention.empty:
            self.ablation = intervention.ablation
            trace = self.rerun(intervention)
        else:
            trace = self.original()
        self.widget.show_trace(trace)
        return trace

    def kind_default(self) -> str:
        return self.widget.trace.kinds[0]

    def handlers(self) -> Mapping[str, wire.rpc.Handler]:
        """The widget's request table: the trace's (`wire.HANDLERS`) and the reruns."""
        def answer(intervention: Intervention | None) -> wire.rpc.Answer:
            trace = self.apply(intervention)
            reply: wire.RerunReply = {"label": trace.intervention.label() if trace.intervention else ""}
            return reply, []

        return {
            **wire.HANDLERS,
            wire.REQUEST_ABLATE: lambda trace, payload: answer(wire.read_ablate(payload, trace.intervention)),
            wire.REQUEST_EDIT: lambda trace, payload: answer(wire.read_edit(payload, trace.intervention)),
            wire.REQUEST_RESTORE: lambda _trace, _payload: answer(None),
        }

    # -- the Python side of the same (AttentionWidget.ablate, .edit, .restore) ------------------------

    def ablate(self, heads: Any, ablation: str) -> Trace:
        current = self.widget.trace.intervention
        return self.apply(intervention_of(heads, ablation, current.edit if current else None,
                                          kind=self.kind_default()))

    def edit(self, edits: Any) -> Trace:
        current = self.widget.trace.intervention
        return self.apply(intervention_of(current.ablate if current else None,
                                          current.ablation if current else "zero", edits, kind=self.kind_default()))


def no_reruns(what: str) -> OptionError:
    return OptionError(f"this widget cannot {what}: it was made from a trace, not by tx_magic.explain(model, "
                       "tokenizer, text) or %explain, so it has no model to rerun.")
