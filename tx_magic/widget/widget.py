"""`AttentionWidget`: the anywidget that shows a `Trace` with the bundled renderer.

Selection traits (`kind`, `layer`, `heads`, `head`, `aggregate`, `token`, `weighting`) are synced both
ways, so code can read, set and observe what the user looks at. Attention crosses as binary
blocks (see `tx_magic.wire`); layers not sent eagerly are served on request. `save_png` /
`save_svg` ask a displayed view for a picture of what it shows.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import Any

import anywidget
import traitlets

from .. import wire
from ..analysis.patching import Patching
from ..core.errors import OptionError
from ..core.intervention import Intervention
from ..core.trace import Trace
from ..report import fallback_html, save_html
from . import lifecycle
from .bundle import BUNDLE, BUNDLE_ID, CSS, LOADER
from .exports import ExportError, PendingExports
from .reruns import Rerun, Reruns, no_reruns


class AttentionWidget(anywidget.AnyWidget):
    """Linked arc and matrix views of every layer's and head's attention in a trace."""

    _esm = LOADER
    _css = CSS.read_text(encoding="utf-8")  # a string: anywidget ties every instance to a file path's watcher
    _bundle = traitlets.Unicode(BUNDLE).tag(sync=True)
    _bundle_id = traitlets.Unicode(BUNDLE_ID).tag(sync=True)

    _meta = traitlets.Dict().tag(sync=True)
    _layers: traitlets.List[wire.Block] = traitlets.List().tag(sync=True)
    #: Hidden states, logit lens, next-token logits, generation (`wire.encode_internals`); {} if none.
    _internals = traitlets.Dict().tag(sync=True)
    #: Whether the kernel reruns the model on the user's request, and the unintervened run's last logits
    #: while an intervention is shown (`wire.encode_reruns`); {} when it cannot.
    _reruns = traitlets.Dict().tag(sync=True)
    #: Effects of activation patching for the Effects tab (`wire.encode_patching`); {} if none.
    _patching = traitlets.Dict().tag(sync=True)
    #: Views registered with `tx_magic.register_view` (name and ES module source), each in its own tab.
    _views: traitlets.List[wire.UserView] = traitlets.List().tag(sync=True)

    #: Attention kind shown: "self", or "encoder" / "decoder" / "cross".
    kind = traitlets.Unicode("self").tag(sync=True)
    #: Layer shown (0-based).
    layer = traitlets.Int(0).tag(sync=True)
    #: Heads drawn in the arc view (one colour each), and averaged in the matrix when head == -1.
    heads = traitlets.List(traitlets.Int()).tag(sync=True)
    #: Head shown alone in the matrix view, or -1 for the aggregate of `heads`.
    head = traitlets.Int(-1).tag(sync=True)
    #: What the matrix shows when `head` is -1: "mean" of `heads`, or their attention "rollout"
    #: (Abnar & Zuidema 2020) through layers 0..`layer`; rollout needs self-attention.
    aggregate = traitlets.Enum(("mean", "rollout"), "mean").tag(sync=True)
    #: Query token in focus (hovered, else clicked), or -1 for none.
    token = traitlets.Int(-1).tag(sync=True)
    #: What the matrix, arcs, overview and statistics weigh by: the "raw" weights, or "value"-weighted rows
    #: (a_ij ||f_h(x_j)||, each row normalised; Kobayashi et al. 2020), computed by one more pass of the model.
    weighting = traitlets.Enum(("raw", "value"), "raw").tag(sync=True)

    def __init__(self, trace: Trace, *, kind: str | None = None, layer: int = 0,
                 head: int | None = None, eager_budget: int = wire.EAGER_BUDGET, weighting: str = "raw",
                 rerun: Rerun | None = None, patching: Any = (), **kwargs: Any) -> None:
        kind = kind or trace.kinds[0]
        if kind not in trace.kinds:
            raise OptionError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
        layers, n_heads, _, _ = trace.shape(kind)
        if not 0 <= layer < layers:
            raise OptionError(f"layer must be in 0..{layers - 1}, got {layer}")
        if head is not None and not -1 <= head < n_heads:
            raise OptionError(f"head must be in 0..{n_heads - 1} (or -1 for the mean), got {head}")
        self.trace = trace  # before the traits, whose validators read it
        self._exports = PendingExports()
        self._eager_budget = eager_budget
        self._reruns_of = Reruns(self, rerun, trace) if rerun is not None else None
        results = [patching] if isinstance(patching, Patching) else list(patching)
        super().__init__(
            _meta=wire.encode_meta(trace),
            _layers=wire.eager_layers(trace, eager_budget, layer=layer),
            kind=kind, layer=layer, heads=list(range(n_heads)),
            head=-1 if head is None else head, _internals=wire.encode_internals(trace), _views=wire.encode_views(),
            _reruns=self._reruns_of.state() if self._reruns_of else {},
            _patching=wire.encode_patching(results) if results else {}, **kwargs,
        )
        self._handlers = self._reruns_of.handlers() if self._reruns_of else wire.HANDLERS
        if weighting != "raw":
            try:
                self.weighting = weighting
            except traitlets.TraitError as exc:
                raise OptionError(str(exc)) from None
        self.on_msg(self._on_custom_msg)
        lifecycle.adopt(self)  # a re-run cell closes the widgets its last run made

    def close(self) -> None:
        """Close the views in every front end; the trace goes as soon as nothing else holds it."""
        super().close()
        # The message handler is a bound method held by the widget: without this cycle a closed
        # widget's weights are freed when the last reference goes, not at the next cyclic collection.
        self.on_msg(self._on_custom_msg, remove=True)

    def show_trace(self, trace: Trace) -> None:
        """Show `trace`, another run of the same model (a training step, an intervened run); the selection stays."""
        if any(k not in trace.kinds or trace.shape(k)[:2] != self.trace.shape(k)[:2] for k in self.trace.kinds):
            raise OptionError("show_trace needs a trace of the same model (the same kinds, layers and heads)")
        self.trace = trace
        with self.hold_sync():
            self._meta = dict(wire.encode_meta(trace))
            self._layers = wire.eager_layers(trace, self._eager_budget, layer=self.layer)
            self._internals = dict(wire.encode_internals(trace))
            if self._reruns_of is not None:  # an intervened run's baseline, or none once restored
                self._reruns = dict(self._reruns_of.state())

    def save_html(self, path: str | os.PathLike[str], **options: Any) -> pathlib.Path:
        """Write a self-contained HTML report of this trace (same renderer, opens offline, no kernel).

        Unlike the picture exports it needs no displayed view and is written at once.
        Options: see `tx_magic.report.save_html`.
        """
        return save_html(self, pathlib.Path(path), **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, plus a small static preview (text/html) for viewers without a widget
        manager: GitHub, nbviewer, a notebook reopened without its widget state."""
        lifecycle.displayed(self)
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            data["text/html"] = fallback_html(self.trace)
        return bundle

    def save_png(self, path: str | os.PathLike[str], *, scale: float = 2) -> concurrent.futures.Future[pathlib.Path]:
        """Write a PNG of the arc and matrix views as they are now shown, at `scale` x CSS pixels.

        A displayed view draws the picture and sends it back; the kernel reads that reply once
        it is idle, so the file appears after the running cell (and any queued cells) finish.
        Returns a `concurrent.futures.Future` that completes with the file's path, or fails
        (`ExportError`) when no view answers within `EXPORT_TIMEOUT` idle seconds (the widget is
        not displayed) or the picture cannot be made. Check it in a later cell:
        ``f = w.save_png("attention.png")`` ... ``f.result()``.
        """
        if not 0.25 <= scale <= 4:
            raise ValueError(f"scale must be in 0.25..4, got {scale}")
        return self._request_export("png", path, scale=scale)

    def save_svg(self, path: str | os.PathLike[str]) -> concurrent.futures.Future[pathlib.Path]:
        """Write an SVG of the arc and matrix views as they are now shown; see `save_png`."""
        return self._request_export("svg", path)

    def _request_export(self, fmt: str, path: str | os.PathLike[str],
                        scale: float | None = None) -> concurrent.futures.Future[pathlib.Path]:
        target = pathlib.Path(path).expanduser().resolve()
        if not target.parent.is_dir():
            raise FileNotFoundError(f"cannot write {target}: folder {target.parent} does not exist")
        if self.comm is None:
            raise ExportError("this widget was closed: display a new one (tx_magic.show(w.trace)) and save from it")
        payload: wire.ExportRequest = {"format": fmt} if scale is None else {"format": fmt, "scale": scale}
        request = wire.request(wire.REQUEST_EXPORT, payload)
        future = self._exports.add(request["id"], fmt, target)
        self.send(request)
        return future

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        """The widget's one message handler (`wire.rpc`): a view's reply to an export, or a request
        of the renderer's, answered from the trace."""
        if wire.is_reply(content):
            self._exports.answer(content, list(buffers or []))
            return
        reply = wire.reply_to(self.trace, content, self._handlers, timed=True)
        if reply is not None:
            self.send(reply[0], buffers=reply[1])

    # -- interventions: rerun the model (widgets made by explain / %explain) ---------------------------

    @property
    def intervention(self) -> Intervention | None:
        """What was done to the run shown (heads ablated, weights edited), None for the model as it is."""
        return self.trace.intervention

    def ablate(self, heads: Any, ablation: str = "zero") -> Trace:
        """Rerun with exactly `heads` ablated (``[(layer, head), ...]``, by zeros or their "mean" over the
        input's positions), weight edits kept; the views show that run. Returns its trace."""
        if self._reruns_of is None:
            raise no_reruns("ablate heads")
        return self._reruns_of.ablate(heads, ablation)

    def edit(self, edits: Any) -> Trace:
        """Rerun with exactly these weight edits (``[(layer, head, query, key, weight), ...]``; weight 0
        blocks the key), ablations kept; the views show that run (and the Next token tab the change)."""
        if self._reruns_of is None:
            raise no_reruns("edit weights")
        return self._reruns_of.edit(edits)

    def restore(self) -> Trace:
        """Back to the model's own run (no ablation, no edit)."""
        if self._reruns_of is None:
            raise no_reruns("restore a run")
        return self._reruns_of.apply(None)

    @traitlets.validate("_bundle")
    def _keep_bundle(self, proposal: dict[str, Any]) -> str:
        # A view that let go of its copy may send "" back: the kernel keeps the renderer for new pages.
        return proposal["value"] or BUNDLE

    @traitlets.validate("layer")
    def _check_layer(self, proposal: dict[str, Any]) -> int:
        # Against the deepest kind: the renderer may send a new kind and its layer in either order.
        value: int = proposal["value"]
        most = max(self.trace.shape(k)[0] for k in self.trace.kinds)
        if not 0 <= value < most:
            raise traitlets.TraitError(f"layer must be in 0..{most - 1}, got {value}")
        return value

    @traitlets.validate("kind")
    def _check_kind(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if value not in self.trace.kinds:
            raise traitlets.TraitError(f"kind must be one of {list(self.trace.kinds)}, got {value!r}")
        return value

    @traitlets.observe("kind")
    def _clamp_to_kind(self, change: dict[str, Any]) -> None:
        layers, heads, _, _ = self.trace.shape(change["new"])
        with self.hold_sync():
            self.layer = min(self.layer, layers - 1)
            self.heads = [h for h in self.heads if h < heads] or list(range(heads))
            if self.head >= heads:
                self.head = -1
            queries, keys = self.trace.tokens(change["new"])
            if queries is not keys:
                self.aggregate = "mean"
            if wire.ANALYSIS_VALUE not in wire.analyses(self.trace).get(change["new"], []):
                self.weighting = "raw"

    @traitlets.validate("weighting")
    def _check_weighting(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if value == "value" and wire.ANALYSIS_VALUE not in wire.analyses(self.trace).get(self.kind, []):
            why = ("this long input was captured reduced: capture fewer tokens (max_tokens=...)"
                   if self.trace.is_streamed(self.kind) else
                   "it needs the model: capture a transformers model with tx_magic.capture or %explain")
            raise traitlets.TraitError(f"no value weighting for {self.kind!r} attention: {why}")
        return value

    @traitlets.validate("aggregate")
    def _check_aggregate(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        queries, keys = self.trace.tokens(self.kind)
        if value == "rollout" and queries is not keys:
            raise traitlets.TraitError(f"rollout needs self-attention; {self.kind!r} attends across sequences")
        return value

    def __repr__(self) -> str:
        return f"<AttentionWidget {self.trace!r} kind={self.kind} layer={self.layer} head={self.head}>"


