"""End to end: `%explain` in a real JupyterLab, driven by a real (headless, offline) Chromium.

The package's JupyterLab server and browser (conftest.py) and one notebook serve the whole
module. The notebook runs::

    %load_ext tx_magic
    w = %explain The animal didn't cross the street because it was too tired.
    w

and the tests check that both views drew, that hovering a token links the views and reaches
Python, that Python reaches the views, that a head chip reaches Python, and that nothing left
the machine. Set ``TX_MAGIC_SCREENSHOT=1`` to write the README's ``docs/screenshot.png``.

Needs Debian's ``chromium`` and the ``playwright`` package (``pip install -e .[test]``); a
missing browser is a failure with install instructions, not a skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from .jupyterlab import (
    OUTPUT_DIR,
    REPO_ROOT,
    JupyterLabServer,
    execute_in_kernel,
    poll_kernel,
    run_notebook,
    save_screenshot,
    wait_for_attribute,
    wait_for_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEXT = "The animal didn't cross the street because it was too tired."
CELLS = ["%load_ext tx_magic", f"w = %explain {TEXT}", "w"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

ARC = '[data-view="arc"]'
MATRIX = '[data-view="matrix"]'
QUERY_TOKENS = f'{ARC} .txm-token[data-side="query"]'


@dataclass
class Notebook:
    """The open notebook page, plus everything the page did on the network and went wrong in it."""

    page: Any
    requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def notebook(server: JupyterLabServer, context: Any, new_page: Any) -> Iterator[Notebook]:
    """The notebook opened in the browser and run, its widget not yet necessarily drawn.

    Every request of the browser (not only this page's) is recorded while the module runs."""
    page = new_page()
    nb = Notebook(page, page_errors=page.txm_errors)

    def record(request: Any) -> None:
        nb.requests.append(request.url)

    context.on("request", record)
    page.on("websocket", lambda ws: nb.requests.append(ws.url))
    run_notebook(page, server, "explain.ipynb", CELLS)  # the sidebar collapsed: the widget gets the page's width
    yield nb
    context.remove_listener("request", record)


@pytest.fixture(scope="module")
def ready(notebook: Notebook) -> Notebook:
    """The notebook once the widget reports both views drawn (``data-ready="1"``)."""
    wait_for_js(
        notebook.page,
        """() => !!document.querySelector('.txm-root[data-ready="1"]')
                 || !!document.querySelector('.txm-root .txm-error')""",
        '.txm-root[data-ready="1"] (both views drawn)', timeout=30,
        describe="""() => { const r = document.querySelector('.txm-root');
                    const outs = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')];
                    return r ? {dataReady: r.getAttribute('data-ready'), html: r.outerHTML.slice(0, 400)}
                             : {noRoot: true, outputs: outs.map(o => o.textContent.slice(0, 200))}; }""",
    )
    errors = notebook.page.locator(".txm-error")
    if errors.count():
        save_screenshot(notebook.page, "txm-error")
        pytest.fail(f"The widget shows an error box: {errors.first.inner_text()!r}", pytrace=False)
    return notebook


def _query_token(page: Any, text: str) -> Any:
    loc = page.locator(QUERY_TOKENS).filter(has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
    assert loc.count() == 1, f"expected one arc query token labelled {text!r}, found {loc.count()}"
    return loc.first


# -- both views drew ----------------------------------------------------------------------------

def test_both_views_drew(ready: Notebook) -> None:
    page = ready.page
    assert page.locator(".txm-error").count() == 0
    for view in (ARC, MATRIX):
        sizes = page.eval_on_selector_all(f"{view} canvas",
                                          "cs => cs.map(c => [c.width, c.height, c.clientWidth, c.clientHeight])")
        assert sizes, f"no <canvas> inside {view}"
        assert any(min(s) > 0 for s in sizes), f"every canvas in {view} has a zero size: {sizes}"

    stats = page.evaluate("""(sel) => [...document.querySelectorAll(sel + ' canvas')].map(c => {
      if (!c.width || !c.height) return {width: c.width, height: c.height, nonBackground: 0, colours: 0};
      const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
      const g = t.getContext('2d'); g.drawImage(c, 0, 0);
      const d = g.getImageData(0, 0, t.width, t.height).data;
      const counts = new Map();
      for (let i = 0; i < d.length; i += 4) {
        const key = ((d[i] << 24) | (d[i + 1] << 16) | (d[i + 2] << 8) | d[i + 3]) >>> 0;
        counts.set(key, (counts.get(key) || 0) + 1);
      }
      const background = Math.max(...counts.values());
      return {width: c.width, height: c.height, nonBackground: d.length / 4 - background, colours: counts.size};
    })""", MATRIX)
    assert max(s["nonBackground"] for s in stats) > 100, f"the matrix canvas looks blank: {stats}"

    n_tokens = int(execute_in_kernel(page, "print(len(w.trace.tokens()[0]))").strip())
    assert page.locator(QUERY_TOKENS).count() == n_tokens, "one arc query label per token"
    assert ready.page_errors == [], f"uncaught errors in the page: {ready.page_errors}"


# -- linked views -------------------------------------------------------------------------------

def test_hover_links_views_and_reaches_python(ready: Notebook) -> None:
    page = ready.page
    token = _query_token(page, "animal")
    index = token.get_attribute("data-index")
    assert index is not None and index.isdigit(), f"query token without a data-index: {index!r}"
    token.hover()
    wait_for_attribute(page, MATRIX, "data-focus-row", index)   # the other view followed
    wait_for_attribute(page, ARC, "data-focus-token", index)
    assert "txm-focus" in (token.get_attribute("class") or "").split()
    poll_kernel(page, "print(w.token)", index, f"w.token == {index} in Python after hovering 'animal'")


def test_screenshot(ready: Notebook) -> None:
    """A picture of the widget, "animal" hovered (the README's, with TX_MAGIC_SCREENSHOT=1)."""
    page = ready.page
    root = page.locator(".txm-root").first
    root.evaluate("e => e.scrollIntoView({block: 'start'})")  # before hovering: scrolling moves the token
    token = _query_token(page, "animal")
    token.hover()
    index = token.get_attribute("data-index")
    wait_for_attribute(page, MATRIX, "data-focus-row", index or "")
    page.wait_for_timeout(300)  # let the arcs settle for the picture
    assert "animal" in page.locator(f"{ARC} .txm-token.txm-focus").first.inner_text()
    if os.environ.get("TX_MAGIC_SCREENSHOT") == "1":
        target = REPO_ROOT / "docs" / "screenshot.png"
    else:
        target = OUTPUT_DIR / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    box, matrix = root.bounding_box(), page.locator(MATRIX).first.bounding_box()
    bottom = matrix["y"] + matrix["height"] + 12  # the toolbar and both main views
    page.screenshot(path=str(target), clip={"x": box["x"], "y": box["y"], "width": box["width"],
                                            "height": bottom - box["y"]})
    assert target.stat().st_size > 10_000, f"suspiciously small screenshot {target}"


def test_python_layer_reaches_views(ready: Notebook) -> None:
    page = ready.page
    execute_in_kernel(page, "w.layer = 3")
    wait_for_js(page, "() => document.querySelector('select.txm-layer')?.value === '3'",
                "select.txm-layer to show layer 3 after `w.layer = 3`",
                describe="() => document.querySelector('select.txm-layer')?.value ?? 'no select.txm-layer'")
    wait_for_attribute(page, MATRIX, "data-drawn-layer", "3")


def test_head_chip_reaches_python(ready: Notebook) -> None:
    page = ready.page
    chip = page.locator('button.txm-head[data-head="0"]')
    assert chip.count() == 1, 'expected one button.txm-head[data-head="0"]'
    assert chip.get_attribute("aria-pressed") == "true", "every head starts selected"
    assert execute_in_kernel(page, "print(0 in w.heads)").strip() == "True"
    chip.click()
    wait_for_attribute(page, 'button.txm-head[data-head="0"]', "aria-pressed", "false")
    poll_kernel(page, "print(0 in w.heads)", "False", "head 0 to leave w.heads after clicking its chip")


# -- offline ------------------------------------------------------------------------------------

def test_no_request_leaves_the_machine(ready: Notebook) -> None:
    assert ready.requests, "no request was recorded at all"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "requests.txt").write_text("\n".join(ready.requests) + "\n")
    remote = sorted({url for url in ready.requests
                     if urlsplit(url).scheme not in ("data", "blob", "about")
                     and urlsplit(url).hostname not in LOCAL_HOSTS})
    assert remote == [], f"the page reached beyond this machine: {remote}"
