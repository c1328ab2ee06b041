"""`AttentionWidget`: the anywidget that shows a `Trace` with the bundled renderer.

Selection traits (`kind`, `layer`, `heads`, `head`, `aggregate`, `token`) are synced both
ways, so code can read, set and observe what the user looks at. Attention crosses as binary
blocks (see `tx_magic.wire`); layers not sent eagerly are served on request. `save_png` /
`save_svg` ask a displayed view for a picture of what it shows.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
import sys
import threading
import time
import uuid
from typing import Any

import anywidget
import traitlets

from . import lifecycle, wire
from .errors import OptionError
from .trace import Trace

_STATIC = pathlib.Path(__file__).parent / "static"
_ESM = _STATIC / "widget.js"
_CSS = _STATIC / "widget.css"

if not _ESM.exists():  # pragma: no cover - a broken build must fail loudly, not draw a blank
    raise ImportError(
        f"tx_magic's renderer bundle is missing ({_ESM}). Reinstall the package "
        "(`pip install .` builds it with npm) or run `npm install && npm run build`."
    )


_BUNDLE = _ESM.read_text(encoding="utf-8")
#: The widget's `_esm`: a small module that imports the renderer bundle (sent as `_bundle`) once
#: per page and keeps it. Hosts import `_esm` afresh for every widget, and a browser never frees
#: an imported module, so a cell re-run 50 times would otherwise hold 50 copies of the renderer.
_LOADER = """const bundles = (globalThis.__tx_magic_bundles ??= new Map());
function renderer(model) {
  const id = model.get("_bundle_id");
  if (!bundles.has(id)) {
    const url = URL.createObjectURL(new Blob([model.get("_bundle")], { type: "text/javascript" }));
    bundles.set(id, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return bundles.get(id);
}
export default {
  async render(context) {
    try {
      const cleanup = (await renderer(context.model)).default.render(context);
      return () => {
        cleanup();
        // A removed view's model may outlive it (JupyterLab keeps closed models reachable):
        // let it drop its copy of the renderer, which this page has loaded already.
        // (Twice: Backbone keeps the value before the last set in _previousAttributes.)
        try { context.model.set("_bundle", ""); context.model.set("_bundle", ""); } catch (err) { /* gone */ }
      };
    } catch (err) {
      const box = document.createElement("div");
      box.className = "txm-error";
      box.textContent = "tx_magic could not load its renderer: " + (err && err.message ? err.message : err);
      context.el.append(box);
      return () => box.remove();
    }
  },
};
"""


class AttentionWidget(anywidget.AnyWidget):
    """Linked arc and matrix views of every layer's and head's attention in a trace."""

    _esm = _LOADER
    _css = _CSS
    _bundle = traitlets.Unicode(_BUNDLE).tag(sync=True)
    _bundle_id = traitlets.Unicode(hashlib.sha256(_BUNDLE.encode()).hexdigest()[:16]).tag(sync=True)

    _meta = traitlets.Dict().tag(sync=True)
    _layers = traitlets.List().tag(sync=True)
    #: Hidden states, logit lens, next-token logits, generation (`wire.encode_internals`); {} if none.
    _internals = traitlets.Dict().tag(sync=True)

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

    def __init__(self, trace: Trace, *, kind: str | None = None, layer: int = 0,
                 head: int | None = None, eager_budget: int = wire.EAGER_BUDGET, **kwargs: Any) -> None:
        kind = kind or trace.kinds[0]
        if kind not in trace.kinds:
            raise OptionError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
        layers, n_heads, _, _ = trace.shape(kind)
        if not 0 <= layer < layers:
            raise OptionError(f"layer must be in 0..{layers - 1}, got {layer}")
        if head is not None and not -1 <= head < n_heads:
            raise OptionError(f"head must be in 0..{n_heads - 1} (or -1 for the mean), got {head}")
        self.trace = trace  # before the traits, whose validators read it
        self._exports = _PendingExports()
        super().__init__(
            _meta=wire.encode_meta(trace),
            _layers=wire.eager_layers(trace, eager_budget, layer=layer),
            kind=kind, layer=layer, heads=list(range(n_heads)),
            head=-1 if head is None else head, _internals=wire.encode_internals(trace), **kwargs,
        )
        self.on_msg(self._on_custom_msg)
        lifecycle.adopt(self)  # a re-run cell closes the widgets its last run made

    def save_html(self, path: str | os.PathLike[str], **options: Any) -> pathlib.Path:
        """Write a self-contained HTML report of this trace (same renderer, opens offline, no kernel).

        Unlike the picture exports it needs no displayed view and is written at once.
        Options: see `tx_magic.report.save_html`.
        """
        from .report import save_html

        return save_html(self, path, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, plus a small static preview (text/html) for viewers without a widget
        manager: GitHub, nbviewer, a notebook reopened without its widget state."""
        lifecycle.displayed(self)
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            from .report import fallback_html

            data = bundle[0] if isinstance(bundle, tuple) else bundle
            data["text/html"] = fallback_html(self.trace)
        return bundle

    def save_png(self, path: str | os.PathLike[str], *, scale: float = 2) -> concurrent.futures.Future:
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

    def save_svg(self, path: str | os.PathLike[str]) -> concurrent.futures.Future:
        """Write an SVG of the arc and matrix views as they are now shown; see `save_png`."""
        return self._request_export("svg", path)

    def _request_export(self, fmt: str, path: str | os.PathLike[str], **options: Any) -> concurrent.futures.Future:
        target = pathlib.Path(path).expanduser().resolve()
        if not target.parent.is_dir():
            raise FileNotFoundError(f"cannot write {target}: folder {target.parent} does not exist")
        if self.comm is None:
            raise ExportError("this widget was closed: display a new one (tx_magic.show(w.trace)) and save from it")
        request_id = uuid.uuid4().hex
        future = self._exports.add(request_id, fmt, target)
        self.send({"type": wire.REQUEST_EXPORT, "id": request_id, "format": fmt, **options})
        return future

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") in (wire.REPLY_EXPORT, wire.REPLY_EXPORT_ERROR):
            self._exports.answer(content, list(buffers or []))
            return
        if content.get("type") in (wire.REQUEST_LENS, wire.REQUEST_LOGITS):
            self._on_internals_request(_widget, content, buffers)
            return
        reply = wire.answer(self.trace, content)  # get_layer, get_block, get_topk; None for others
        if reply is not None:
            self.send(reply[0], buffers=reply[1])

    def _on_internals_request(self, _widget: Any, content: Any, buffers: Any) -> None:
        """Answer the next-token view's request for another position's full-vocabulary logits,
        and the lens tab's request for the logit lens at the positions it shows (dispatched from
        `_on_custom_msg`, the widget's one message handler)."""
        if isinstance(content, dict) and content.get("type") == wire.REQUEST_LENS:
            reply, data = wire.answer_lens(self.trace, content)
            self.send(reply, buffers=data)
            return
        if not isinstance(content, dict) or content.get("type") != wire.REQUEST_LOGITS:
            return
        position = content.get("position")
        try:
            reply = wire.encode_logits(self.trace, int(position))
        except (IndexError, TypeError, ValueError) as exc:
            self.send({"type": wire.REPLY_LOGITS_ERROR, "position": position, "message": str(exc)})
            return
        data = reply.pop("data")
        self.send({"type": wire.REPLY_LOGITS, **reply}, buffers=[data])

    @traitlets.validate("_bundle")
    def _keep_bundle(self, proposal: dict[str, Any]) -> str:
        # A view that let go of its copy may send "" back: the kernel keeps the renderer for new pages.
        return proposal["value"] or _BUNDLE

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
            queries, keys = self.trace.tokens(change["new"])
            if queries is not keys:
                self.aggregate = "mean"

    @traitlets.validate("aggregate")
    def _check_aggregate(self, proposal: dict[str, Any]) -> str:
        queries, keys = self.trace.tokens(self.kind)
        if proposal["value"] == "rollout" and queries is not keys:
            raise traitlets.TraitError(f"rollout needs self-attention; {self.kind!r} attends across sequences")
        return proposal["value"]

    def __repr__(self) -> str:
        return f"<AttentionWidget {self.trace!r} kind={self.kind} layer={self.layer} head={self.head}>"


class ExportError(RuntimeError):
    """`save_png` / `save_svg` could not write the picture; the message says why and what to do."""


#: Seconds the kernel may sit idle after an export request before it concludes no view is shown.
EXPORT_TIMEOUT = 10.0
_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<svg"}


class ExportFuture(concurrent.futures.Future):
    """A `Future` for a picture; waiting on it inside the cell that asked would wait forever."""

    def result(self, timeout: float | None = None) -> Any:
        self._refuse_deadlock()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_deadlock()
        return super().exception(timeout)

    def _refuse_deadlock(self) -> None:
        if not self.done() and _KernelActivity.running_cell():
            raise ExportError(
                "the picture is written once the kernel is idle, after this cell (and any queued "
                "cells) finish: call .result() in a later cell, or check .done()"
            )


class _KernelActivity:
    """Whether IPython is running a cell: a view's reply is only read while it is not."""

    busy = False
    _watching = False

    @classmethod
    def watch(cls) -> None:
        ip = _ipython()
        if ip is None:
            return
        cls.busy = cls.running_cell()
        if not cls._watching:
            ip.events.register("pre_run_cell", cls._pre)
            ip.events.register("post_run_cell", cls._post)
            cls._watching = True

    @classmethod
    def _pre(cls, *_: Any) -> None:
        cls.busy = True

    @classmethod
    def _post(cls, *_: Any) -> None:
        cls.busy = False

    @staticmethod
    def running_cell() -> bool:
        """True on the kernel's main thread while it executes a request (a cell)."""
        ip = _ipython()
        kernel = getattr(ip, "kernel", None)
        if kernel is None or threading.current_thread() is not threading.main_thread():
            return False
        try:
            return kernel.get_parent()["header"]["msg_type"] == "execute_request"
        except (AttributeError, KeyError, TypeError):
            return False


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


class _PendingExports:
    """Export requests waiting for a view's answer; a watchdog fails them when none comes."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[ExportFuture, str, pathlib.Path]] = {}
        self._lock = threading.Lock()

    def add(self, request_id: str, fmt: str, target: pathlib.Path) -> ExportFuture:
        future = ExportFuture()
        with self._lock:
            self._pending[request_id] = (future, fmt, target)
        _KernelActivity.watch()
        threading.Thread(target=self._watchdog, args=(request_id,), daemon=True, name="tx_magic-export").start()
        return future

    def _take(self, request_id: Any) -> tuple[ExportFuture, str, pathlib.Path] | None:
        with self._lock:
            return self._pending.pop(str(request_id), None)

    def answer(self, content: dict[str, Any], buffers: list[Any]) -> None:
        """A view's reply: write the file, or fail the future with the view's message."""
        entry = self._take(content.get("id"))
        if entry is None:
            return  # another view answered first, or the request timed out
        future, fmt, target = entry
        try:
            if content.get("type") == wire.REPLY_EXPORT_ERROR:
                raise ExportError(f"the view could not make the {fmt.upper()}: {content.get('message', 'unknown error')}")
            data = bytes(buffers[0]) if buffers else b""
            if not data.startswith(_MAGIC[fmt]):
                raise ExportError(f"the view sent {len(data)} bytes that are not a {fmt.upper()} file")
            target.write_bytes(data)
        except Exception as exc:  # noqa: BLE001 - every failure belongs in the future
            _fail(future, exc, target)
            return
        future.set_result(target)

    def _watchdog(self, request_id: str) -> None:
        idle = 0.0
        step = 0.1
        while True:
            time.sleep(step)
            with self._lock:
                entry = self._pending.get(request_id)
            if entry is None or entry[0].done():
                return
            idle = 0.0 if _KernelActivity.busy else idle + step
            if idle >= EXPORT_TIMEOUT:
                entry = self._take(request_id)
                if entry is not None:
                    future, fmt, target = entry
                    _fail(future, ExportError(
                        f"no view of this widget answered within {EXPORT_TIMEOUT:.0f} s, so {target.name} was not "
                        f"written: display the widget (end a cell with it, e.g. `w`) and call save_{fmt} again"
                    ), target)
                return


def _fail(future: ExportFuture, exc: BaseException, target: pathlib.Path) -> None:
    future.set_exception(exc)
    sys.stderr.write(f"tx_magic: {target.name} not written: {exc}\n")
