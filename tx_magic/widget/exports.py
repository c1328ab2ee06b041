"""Pictures of the views for `save_png` / `save_svg`: a request to a displayed view, a Future for its answer.

A view answers only while the kernel is idle (its reply is read between cells), so a watchdog fails
the Future when no view answers within `EXPORT_TIMEOUT` idle seconds.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import wire


class ExportError(RuntimeError):
    """`save_png` / `save_svg` could not write the picture; the message says why and what to do."""


#: Seconds the kernel may sit idle after an export request before it concludes no view is shown.
EXPORT_TIMEOUT = 10.0
_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<svg"}


class ExportFuture(concurrent.futures.Future[pathlib.Path]):
    """A `Future` for a picture; waiting on it inside the cell that asked would wait forever."""

    def result(self, timeout: float | None = None) -> pathlib.Path:
        self._refuse_deadlock()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_deadlock()
        return super().exception(timeout)

    def _refuse_deadlock(self) -> None:
        if not self.done() and KernelActivity.running_cell():
            raise ExportError(
                "the picture is written once the kernel is idle, after this cell (and any queued "
                "cells) finish: call .result() in a later cell, or check .done()"
            )


class KernelActivity:
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
            return bool(kernel.get_parent()["header"]["msg_type"] == "execute_request")
        except (AttributeError, KeyError, TypeError):
            return False


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


class PendingExports:
    """Export requests waiting for a view's answer; a watchdog fails them when none comes."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[ExportFuture, str, pathlib.Path]] = {}
        self._lock = threading.Lock()

    def add(self, request_id: str, fmt: str, target: pathlib.Path) -> ExportFuture:
        future = ExportFuture()
        with self._lock:
            self._pending[request_id] = (future, fmt, target)
        KernelActivity.watch()
        threading.Thread(target=self._watchdog, args=(request_id,), daemon=True, name="tx_magic-export").start()
        return future

    def _take(self, request_id: Any) -> tuple[ExportFuture, str, pathlib.Path] | None:
        with self._lock:
            return self._pending.pop(str(request_id), None)

    def answer(self, message: Mapping[str, Any], buffers: Sequence[Any]) -> None:
        """A view's reply (`wire.Reply` with the file as its buffer, or `wire.ErrorReply`): write the
        file, or fail the future with the view's message. Replies to no pending export are ignored."""
        entry = self._take(message.get("id"))
        if entry is None:
            return  # another view answered first, or the request timed out
        future, fmt, target = entry
        try:
            if message.get("type") == wire.REPLY_ERROR:
                reason = message.get("message", "unknown error")
                raise ExportError(f"the view could not make the {fmt.upper()}: {reason}")
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
            idle = 0.0 if KernelActivity.busy else idle + step
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
