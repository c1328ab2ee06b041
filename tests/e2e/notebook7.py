"""Notebook 7 (the `notebook` package) for end-to-end tests: the same isolated, loopback server
as :class:`~e2e.jupyterlab.JupyterLabServer`, started as ``jupyter notebook``.

Notebook 7 is built on JupyterLab's application, so ``expose_app_in_browser`` gives the page
``window.jupyterapp`` there too, and ``run_all_and_wait`` / ``execute_in_kernel`` work as in
JupyterLab once :func:`~e2e.jupyterlab.open_notebook` has opened the notebook's own page
(``/notebooks/<path>``, this server's ``TREE``).
"""

from __future__ import annotations

from .jupyterlab import JupyterLabServer


class Notebook7Server(JupyterLabServer):
    """A throw-away Notebook 7 server on 127.0.0.1 (see `JupyterLabServer`)."""

    NAME = "Notebook 7"
    APP = ("notebook", "JupyterNotebookApp")
    TREE = "notebooks/"
    OPENED = "Notebook 7 page of {path} to open with a connected, idle kernel"

    def app_options(self) -> list[str]:
        return []
