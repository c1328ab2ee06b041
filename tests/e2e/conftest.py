"""Fixtures of the browser tests, declared once for every module in tests/e2e.

Starting JupyterLab and Chromium is the slow part of these tests (and CI runs on two cores), so
the package shares one of each:

* ``context``: one headless Chromium (a Playwright persistent context, 1400 x 1000) for the
  package. Without Chromium or Playwright it fails every test that asks for it with the install
  instructions (:class:`~e2e.jupyterlab.BrowserUnavailable`): a missing browser is a failure,
  never a skip.
* ``lab_server``: one JupyterLab server for the package. Modules take it through ``server``.
* ``server``: ``lab_server`` for one module: the module starts on an empty workspace (JupyterLab
  would otherwise reopen the notebooks earlier modules opened, and start their kernels), and the
  kernels it started are shut down when it ends.
* ``own_server``: a JupyterLab server of the module's own, for tests that must not share one (they
  restart kernels, measure memory or shut every kernel down): started for the module, stopped
  after it.
* ``new_page``: opens a page in ``context`` (optionally with its own viewport) that records its
  uncaught errors in ``page.txm_errors``; every page it opened closes when the module ends.

Notebook 7 and marimo each serve one test (tests/e2e/test_frontends.py), which starts its own
server: neither is shared. Notebooks are written and run with
:func:`~e2e.jupyterlab.run_notebook` (JupyterLab) and :func:`~e2e.marimo.marimo_notebook`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .jupyterlab import BrowserUnavailable, JupyterLabServer, browser


@pytest.fixture(scope="package")
def context() -> Iterator[Any]:
    """The package's Chromium (see the module's docstring)."""
    try:
        with browser(viewport=(1400, 1000)) as ctx:
            yield ctx
    except BrowserUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="package")
def lab_server() -> Iterator[JupyterLabServer]:
    """The package's JupyterLab server; modules use it through ``server``."""
    with JupyterLabServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def server(lab_server: JupyterLabServer) -> Iterator[JupyterLabServer]:
    """The shared JupyterLab server, on an empty workspace; this module's kernels end with it."""
    lab_server.reset_workspace()
    before = lab_server.kernel_ids()
    yield lab_server
    lab_server.shut_down_kernels(keep=before)


@pytest.fixture(scope="module")
def own_server() -> Iterator[JupyterLabServer]:
    """A JupyterLab server for this module alone."""
    with JupyterLabServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def new_page(context: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(viewport=(width, height))``: a fresh page in the shared browser, its uncaught
    errors in ``page.txm_errors``; the module's pages close when it ends."""
    pages: list[Any] = []

    def open_page(viewport: tuple[int, int] | None = None) -> Any:
        page = context.new_page()
        pages.append(page)
        if viewport is not None:
            page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.txm_errors = errors
        return page

    yield open_page
    for page in pages:
        with contextlib.suppress(Exception):
            page.close()
