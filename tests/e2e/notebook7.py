"""Notebook 7 (the `notebook` package) for end-to-end tests: the same isolated, loopback server
as :class:`~e2e.jupyterlab.JupyterLabServer`, started as ``jupyter notebook``.

Notebook 7 is built on JupyterLab's application, so ``expose_app_in_browser`` gives the page
``window.jupyterapp`` there too, and ``run_all_and_wait`` / ``execute_in_kernel`` work as in
JupyterLab once :func:`open_notebook` has opened the notebook's own page (``/notebooks/<path>``).
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from .jupyterlab import _KERNEL_READY, _KERNEL_STATE, JupyterLabServer, wait_for_js

if TYPE_CHECKING:
    from playwright.sync_api import Page


class Notebook7Server(JupyterLabServer):
    """A throw-away Notebook 7 server on 127.0.0.1 (see `JupyterLabServer`)."""

    APP = ("notebook", "JupyterNotebookApp")

    def app_options(self) -> list[str]:
        return []


def open_notebook(page: Page, server: Notebook7Server, path: pathlib.Path | str, *, timeout: float = 60.0) -> None:
    """Open notebook `path` in Notebook 7's single-document page and wait for an idle kernel."""
    rel = pathlib.Path(path)
    if rel.is_absolute():
        rel = rel.relative_to(server.root_dir)
    page.goto(f"{server.url}notebooks/{rel.as_posix()}", wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_for_js(page, _KERNEL_READY, f"Notebook 7 page of {rel} to open with a connected, idle kernel",
                timeout=timeout, describe=_KERNEL_STATE)
