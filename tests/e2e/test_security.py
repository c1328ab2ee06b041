"""End to end: token text is data in the widget too. In a real JupyterLab and Chromium,
``%explain`` of a text made of HTML and script, and a trace whose tokens are whole tags, show
that text as text: no dialog opens, no element is created from it.

The package's JupyterLab server and browser (conftest.py) serve the module.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .jupyterlab import (
    JupyterLabServer,
    execute_in_kernel,
    run_notebook,
    save_screenshot,
    wait_for_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEXT = "</script><img src=x onerror=alert(1)> <script>alert(1)</script> & done"
TOKENS = ("[CLS]", "</script><img src=x onerror=alert(1)>", "<script>alert(1)</script>",
          "<b onmouseover=alert(1)>b</b>",
          "[SEP]")
CELLS = [
    "%load_ext tx_magic",
    f"w = %explain {TEXT}\nw",
    ("import numpy as np\nimport tx_magic\nfrom tx_magic import Tokens, Trace\n"
     f"tokens = {TOKENS!r}\n"
     "v = tx_magic.show(Trace('<img src=x onerror=alert(2)>', {'input': Tokens(tokens)},\n"
     "                        {'self': np.full((2, 2, 5, 5), 0.2, np.float32)},\n"
     "                        warnings=['<img src=x onerror=alert(3)> in a warning']))\nv"),
]
ROOTS = ".jp-OutputArea-output .txm-root"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> tuple[Any, list[str], list[str]]:
    """The notebook run in the browser, with the dialogs and page errors seen while it ran."""
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    run_notebook(page, server, "hostile.ipynb", CELLS)
    wait_for_js(page, f"() => document.querySelectorAll('{ROOTS}[data-ready=\"1\"]').length === 2",
                "both widgets drawn", timeout=60)
    return page, dialogs, page.txm_errors


def arc_tokens(page: Any, root: int) -> list[str]:
    return page.evaluate(
        """(i) => [...document.querySelectorAll('.jp-OutputArea-output .txm-root')[i]
                   .querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')]
                   .map(t => t.textContent.trim())""",
        root)


def test_hostile_text_shows_as_text(page):
    page, dialogs, errors = page
    expected = json.loads(execute_in_kernel(page, "import json; print(json.dumps(list(w.trace.tokens()[0])))"))
    assert any("<" in t for t in expected) and "script" in expected
    assert arc_tokens(page, 0) == expected
    assert arc_tokens(page, 1) == list(TOKENS)
    root = page.locator(ROOTS).nth(1)
    for text in TOKENS[1:4]:
        assert root.locator('[data-view="arc"] .txm-token[data-side="query"]').filter(has_text=text).first.is_visible()
    assert dialogs == [] and errors == []
    warning = root.locator(".txm-warnings")
    assert "<img src=x onerror=alert(3)> in a warning" in warning.inner_text()


def test_hovering_hostile_tokens_runs_nothing(page):
    page, dialogs, _ = page
    root = page.locator(ROOTS).nth(1)
    for index in (1, 2, 3):
        root.locator(f'[data-view="arc"] .txm-token[data-side="query"][data-index="{index}"]').hover()
        root.locator('[data-view="matrix"]').hover()
    root.locator('[data-view="arc"] .txm-token[data-side="query"][data-index="3"]').hover()
    wait_for_js(page, """() => document.querySelectorAll('.jp-OutputArea-output .txm-root')[1]
                 .querySelector('[data-view="matrix"]').getAttribute('data-focus-row') === '3'""",
                "the second widget's matrix to follow the hovered token")
    created = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output .txm-root')]
        .map(r => r.querySelectorAll('img, script, b, iframe, object').length)""")
    save_screenshot(page, "security-widget")
    assert created == [0, 0], f"elements made from token text: {created}"
    assert dialogs == [], f"a dialog opened: {dialogs}"
