"""`AttentionWidget`: the anywidget that shows a `Trace` with the bundled renderer.

Selection traits (`kind`, `layer`, `heads`, `head`, `token`) are synced both ways, so code
can read, set and observe what the user looks at. Attention crosses as binary blocks
(see `tx_magic.wire`); layers not sent eagerly are served on request.
"""

from __future__ import annotations

import pathlib
from typing import Any

import anywidget
import traitlets

from . import wire
from .trace import Trace

_STATIC = pathlib.Path(__file__).parent / "static"
_ESM = _STATIC / "widget.js"
_CSS = _STATIC / "widget.css"

if not _ESM.exists():  # pragma: no cover - a broken build must fail loudly, not draw a blank
    raise ImportError(
        f"tx_magic's renderer bundle is missing ({_ESM}). Reinstall the package "
        "(`pip install .` builds it with npm) or run `npm install && npm run build`."
    )


class AttentionWidget(anywidget.AnyWidget):
    """Linked arc and matrix views of every layer's and head's attention in a trace."""

    _esm = _ESM
    _css = _CSS

    _meta = traitlets.Dict().tag(sync=True)
    _layers = traitlets.List().tag(sync=True)

    #: Attention kind shown: "self", or "encoder" / "decoder" / "cross".
    kind = traitlets.Unicode("self").tag(sync=True)
    #: Layer shown (0-based).
    layer = traitlets.Int(0).tag(sync=True)
    #: Heads drawn in the arc view (one colour each), and averaged in the matrix when head == -1.
    heads = traitlets.List(traitlets.Int()).tag(sync=True)
    #: Head shown alone in the matrix view, or -1 for the mean of `heads`.
    head = traitlets.Int(-1).tag(sync=True)
    #: Query token in focus (hovered, else clicked), or -1 for none.
    token = traitlets.Int(-1).tag(sync=True)

    def __init__(self, trace: Trace, *, kind: str | None = None, layer: int = 0,
                 head: int | None = None, eager_budget: int = wire.EAGER_BUDGET, **kwargs: Any) -> None:
        kind = kind or trace.kinds[0]
        layers, n_heads, _, _ = trace.shape(kind)
        if not 0 <= layer < layers:
            raise ValueError(f"layer must be in 0..{layers - 1}, got {layer}")
        if head is not None and not -1 <= head < n_heads:
            raise ValueError(f"head must be in 0..{n_heads - 1} (or -1 for the mean), got {head}")
        self.trace = trace  # before the traits, whose validators read it
        super().__init__(
            _meta=wire.encode_meta(trace),
            _layers=wire.eager_layers(trace, eager_budget),
            kind=kind, layer=layer, heads=list(range(n_heads)),
            head=-1 if head is None else head, **kwargs,
        )
        self.on_msg(self._on_custom_msg)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != wire.REQUEST_LAYER:
            return
        kind, layer = content.get("kind"), content.get("layer")
        try:
            block = wire.encode_layer(self.trace, str(kind), int(layer))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.send({"type": wire.REPLY_ERROR, "kind": kind, "layer": layer, "message": str(exc)})
            return
        data = block.pop("data")
        self.send({"type": wire.REPLY_LAYER, **block}, buffers=[data])

    @traitlets.validate("layer")
    def _check_layer(self, proposal: dict[str, Any]) -> int:
        # Against the deepest kind: the renderer may send a new kind and its layer in either order.
        value = proposal["value"]
        most = max(self.trace.shape(k)[0] for k in self.trace.kinds)
        if not 0 <= value < most:
            raise traitlets.TraitError(f"layer must be in 0..{most - 1}, got {value}")
        return value

    @traitlets.validate("kind")
    def _check_kind(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self.trace.kinds:
            raise traitlets.TraitError(f"kind must be one of {list(self.trace.kinds)}, got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.observe("kind")
    def _clamp_to_kind(self, change: dict[str, Any]) -> None:
        layers, heads, _, _ = self.trace.shape(change["new"])
        with self.hold_sync():
            self.layer = min(self.layer, layers - 1)
            self.heads = [h for h in self.heads if h < heads] or list(range(heads))
            if self.head >= heads:
                self.head = -1

    def __repr__(self) -> str:
        return f"<AttentionWidget {self.trace!r} kind={self.kind} layer={self.layer} head={self.head}>"
