"""marimo for end-to-end tests: ``marimo run`` of a notebook file on 127.0.0.1, in its own
process group, stopped (with its kernel) when the test ends.

``marimo run`` serves the notebook as an app and runs every cell when a page connects, so a
test opens :attr:`MarimoServer.url` and waits for the widget. Widgets are drawn by marimo's
own anywidget host inside shadow roots: use Playwright locators (they pierce open shadow
roots), not ``document.querySelector``.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import textwrap

from .jupyterlab import ServerProcess, free_port


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


class MarimoServer(ServerProcess):
    """``marimo run NOTEBOOK`` on a free loopback port, as a context manager."""

    NAME = "marimo"

    def __init__(self, source: str, *, startup_timeout: float = 60.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self.source = source

    def start(self) -> None:
        """Write the notebook into a temporary home and serve it until ``/health`` answers."""
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="txm-marimo-"))
        notebook = self.base / "notebook.py"
        notebook.write_text(self.source)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   HOME=str(self.base), XDG_CONFIG_HOME=str(self.base / "config"),
                   XDG_CACHE_HOME=str(self.base / "cache"), XDG_STATE_HOME=str(self.base / "state"))
        env.setdefault("TX_MAGIC_CACHE", str(pathlib.Path.home() / ".cache" / "tx_magic"))
        self.port = free_port()
        self.log_path = self.base / "marimo.log"
        self.launch([sys.executable, "-m", "marimo", "-y", "run", str(notebook), "--headless", "--host", "127.0.0.1",
                     "--port", str(self.port), "--no-token"], cwd=self.base, env=env, ready_path="health")
