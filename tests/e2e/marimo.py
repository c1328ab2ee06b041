"""marimo for end-to-end tests: ``marimo run`` of a notebook file on 127.0.0.1, in its own
process group, stopped (with its kernel) when the test ends.

``marimo run`` serves the notebook as an app and runs every cell when a page connects, so a
test opens :attr:`MarimoServer.url` and waits for the widget. Widgets are drawn by marimo's
own anywidget host inside shadow roots: use Playwright locators (they pierce open shadow
roots), not ``document.querySelector``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

from .jupyterlab import free_port, wait_until_serving


def marimo_notebook(*cells: str) -> str:
    """The source of a marimo notebook whose cells run `cells` in order (names flow between them
    through one returned namespace: each cell returns its globals to the next)."""
    parts = ["import marimo\n\napp = marimo.App()\n"]
    names: list[str] = []
    for i, body in enumerate(cells):
        defined = [n for n in _assigned(body) if n not in names]
        args = ", ".join(names)
        returns = f"    return ({', '.join(defined)},)\n" if defined else "    return\n"
        parts.append(f"\n@app.cell\ndef _c{i}({args}):\n{textwrap.indent(body.strip(), '    ')}\n{returns}")
        names += defined
    parts.append('\n\nif __name__ == "__main__":\n    app.run()\n')
    return "".join(parts)


def _assigned(body: str) -> list[str]:
    import ast

    out: list[str] = []
    for node in ast.walk(ast.parse(body)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in out:
            out.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = (alias.asname or alias.name).split(".")[0]
                if name not in out:
                    out.append(name)
    return out


class MarimoServer:
    """``marimo run NOTEBOOK`` on a free loopback port, as a context manager."""

    def __init__(self, source: str, *, startup_timeout: float = 60.0) -> None:
        self.source = source
        self.startup_timeout = startup_timeout
        self.port = 0
        self.base = pathlib.Path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> MarimoServer:
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="txm-marimo-"))
        notebook = self.base / "notebook.py"
        notebook.write_text(self.source)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   HOME=str(self.base), XDG_CONFIG_HOME=str(self.base / "config"),
                   XDG_CACHE_HOME=str(self.base / "cache"), XDG_STATE_HOME=str(self.base / "state"))
        env.setdefault("TX_MAGIC_CACHE", str(pathlib.Path.home() / ".cache" / "tx_magic"))
        self.port = free_port()
        self._log = (self.base / "marimo.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "marimo", "-y", "run", str(notebook), "--headless", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-token"],
            cwd=self.base, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_serving(self, "marimo", self.url + "health")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return (self.base / "marimo.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no marimo log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.base != pathlib.Path() and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)
