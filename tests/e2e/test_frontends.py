"""End to end beyond JupyterLab: Notebook 7, marimo, and a notebook executed headless with
nbclient then reopened in JupyterLab, each in a real (headless, offline) Chromium.

For each: the widget draws, hovering a token moves the other view, and no request leaves
127.0.0.1. A notebook reopened without its kernel shows the widget (from its saved state) or
its static preview, never a blank area. VS Code and Colab cannot run here: the last tests check
the bundle follows anywidget's conventions they rely on.

Notebook 7 and marimo are started by their test (each serves one); the reopened notebook uses the
package's JupyterLab server. All share the package's browser (conftest.py).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from . import notebook7
from .jupyterlab import (
    REPO_ROOT,
    JupyterLabServer,
    open_notebook,
    poll_kernel,
    run_all_and_wait,
    save_screenshot,
    wait_for_js,
)
from .marimo import MarimoServer, marimo_notebook

TEXT = "The animal didn't cross the street because it was too tired."
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
READY = '.txm-root[data-ready="1"]'
ARC, MATRIX = '[data-view="arc"]', '[data-view="matrix"]'


class Recorder:
    """A fresh page, with every URL it asked for and every uncaught error."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("pageerror", lambda e: self.errors.append(f"{e}\n{getattr(e, 'stack', '')}"))

    def our_errors(self) -> list[str]:
        """Uncaught errors, less those raised wholly inside the host's own code (Notebook 7 throws
        one while loading settings in an isolated profile); tx_magic's bundle loads from a blob:
        or /@file/ URL, so its frames never match."""
        host = re.compile(r"/static/(notebook|lab)/|/assets/")
        def hosts_only(err: str) -> bool:
            frames = re.findall(r"\((https?://[^)]+)\)|at (https?://\S+)", err)
            urls = [a or b for a, b in frames]
            return bool(urls) and all(host.search(u) for u in urls) and "tx_magic" not in err
        return [e for e in self.errors if not hosts_only(e)]

    def remote(self) -> list[str]:
        return sorted({u for u in self.requests if urlsplit(u).scheme not in ("data", "blob", "about")
                       and urlsplit(u).hostname not in LOCAL_HOSTS})

    def close_and_check(self, frontend: str) -> None:
        """Save ``test-output/frontend-<frontend>.png`` and close the page; then nothing it asked
        for may have left 127.0.0.1, and no uncaught error may be ours."""
        save_screenshot(self.page, f"frontend-{frontend.lower().replace(' ', '')}")
        self.page.close()
        assert self.remote() == [], f"{frontend} page reached beyond this machine: {self.remote()}"
        assert self.our_errors() == [], self.errors


def wait_drawn(page: Any, count: int, what: str, timeout: float = 90) -> None:
    """Wait until `count` widgets report both views drawn; an error box fails at once, with its text."""
    roots, errors = page.locator(READY), page.locator(".txm-root .txm-error")
    deadline = page.evaluate("() => performance.now()") + timeout * 1000
    while roots.count() < count:
        if errors.count():
            save_screenshot(page, f"error-{what}")
            pytest.fail(f"{what}: the widget shows an error: {errors.first.inner_text()!r}", pytrace=False)
        if page.evaluate("() => performance.now()") > deadline:
            shot = save_screenshot(page, f"timeout-{what}")
            pytest.fail(f"{what}: {roots.count()} of {count} widgets drawn after {timeout:.0f} s ({shot})",
                        pytrace=False)
        page.wait_for_timeout(200)


def hover_links_views(page: Any, nth: int = 0) -> str:
    """Hover the arc token 'animal' of widget `nth`; the matrix must follow. Returns its index."""
    root = page.locator(".txm-root").nth(nth)
    token = root.locator(f'{ARC} .txm-token[data-side="query"]').filter(has_text=re.compile(r"^\s*animal\s*$"))
    assert token.count() == 1, f"expected one arc token 'animal', found {token.count()}"
    index = token.first.get_attribute("data-index")
    root.evaluate("e => e.scrollIntoView({block: 'start'})")
    token.first.hover()
    matrix = root.locator(MATRIX).first
    for _ in range(50):
        if matrix.get_attribute("data-focus-row") == index:
            return str(index)
        page.wait_for_timeout(100)
    save_screenshot(page, "hover-not-linked")
    raise AssertionError(f"the matrix did not follow the hovered token {index}: "
                         f"data-focus-row={matrix.get_attribute('data-focus-row')!r}")


# -- Notebook 7 ------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.timeout(300)
def test_notebook7_draws_links_and_stays_offline(context):
    with notebook7.Notebook7Server() as server:
        rec = Recorder(context)
        path = server.write_notebook("nb7.ipynb", ["%load_ext tx_magic", f"w = %explain {TEXT}\nw"])
        open_notebook(rec.page, server, path)
        run_all_and_wait(rec.page)
        wait_drawn(rec.page, 1, "notebook7")
        index = hover_links_views(rec.page)
        poll_kernel(rec.page, "print(w.token)", index, "w.token to follow the hover in Notebook 7")
        rec.close_and_check("Notebook 7")


# -- marimo --------------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.timeout(300)
def test_marimo_anywidget_and_plain_output_draw_link_and_stay_offline(context):
    source = marimo_notebook(
        "import marimo as mo\nimport tx_magic\n"
        f"w = tx_magic.explain(text={TEXT!r})\nmo.ui.anywidget(w)",
        f"v = tx_magic.explain(text={TEXT!r})\nv",  # the plain explain() call as a cell's output
    )
    with MarimoServer(source) as server:
        rec = Recorder(context)
        rec.page.goto(server.url, wait_until="domcontentloaded")
        wait_drawn(rec.page, 2, "marimo")
        for nth in (0, 1):
            hover_links_views(rec.page, nth)
        rec.close_and_check("marimo")


# -- executed headless, reopened -----------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.timeout(300)
def test_notebook_executed_by_nbclient_reopens_with_the_widget_or_its_preview(context, server: JupyterLabServer):
    import nbclient
    import nbformat

    path = server.write_notebook("headless.ipynb", ["%load_ext tx_magic", f"%explain {TEXT}"])
    nb = nbformat.read(str(path), as_version=4)
    nbclient.NotebookClient(nb, timeout=180, store_widget_state=True, kernel_name="python3").execute()
    nbformat.write(nb, str(path))
    rec = Recorder(context)
    open_notebook(rec.page, server, path)
    page = rec.page
    # The kernel that made the widget is gone: the saved widget state draws it, or the static
    # preview stands in. Either way the output area is never blank, and never an error box.
    wait_for_js(page, """() => {
          const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[1]?.querySelector('.jp-OutputArea');
          return !!out && (!!out.querySelector('.txm-root[data-ready="1"]') || !!out.querySelector('.txm-fallback')
                           || /model not found|Error displaying widget/i.test(out.textContent || ''));
        }""", "the reopened notebook's output to show the widget or its preview", timeout=60)
    shown = page.evaluate("""() => {
          const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[1].querySelector('.jp-OutputArea');
          return {widget: !!out.querySelector('.txm-root[data-ready="1"]'),
                  preview: !!out.querySelector('.txm-fallback img'),
                  text: (out.textContent || '').slice(0, 5000)};
        }""")
    save_screenshot(page, "frontend-reopened")
    page.close()
    assert shown["widget"] or shown["preview"], f"reopened notebook shows neither widget nor preview: {shown}"
    assert "model not found" not in shown["text"].lower(), shown
    assert "animal" in shown["text"], shown
    assert rec.remote() == [], rec.remote()


# -- VS Code and Colab: anywidget's conventions, checked on the bundle --------------------------------

BUNDLE = REPO_ROOT / "tx_magic" / "static" / "widget.js"


def test_bundle_is_an_es_module_with_a_default_render():
    """Every anywidget host (JupyterLab, Notebook 7, VS Code, Colab, marimo) imports `_esm` as an
    ES module and calls the default export's `render({model, el})`."""
    code = BUNDLE.read_text(encoding="utf-8")
    assert re.search(r"export\s*\{[^}]*\bas default\b[^}]*\}|export default", code), "no default export"
    assert re.search(r"\brender\s*[:(]", code), "no render in the bundle"


def test_bundle_needs_no_loader_and_no_network():
    """No require.js (bertviz's "require is not defined"), no dynamic import or fetch of a URL,
    no CDN: Colab and VS Code load it from the widget's own state."""
    code = BUNDLE.read_text(encoding="utf-8")
    assert not re.search(r"\brequire\s*\(", code), "the bundle calls require()"
    assert not re.search(r"\bimport\s*\(\s*[\"'`]", code), "the bundle imports a module at run time"
    urls = set(re.findall(r"https?://[^\s\"'`)]+", code))
    allowed = {u for u in urls if u.startswith(("http://www.w3.org/", "https://www.w3.org/"))}  # SVG namespaces
    assert urls - allowed == set(), f"URLs in the bundle: {sorted(urls - allowed)}"


def test_wire_reads_every_byte_form_hosts_hand_over():
    """anywidget in JupyterLab/VS Code gives DataView, Colab Uint8Array, saved state base64 text:
    js/src/wire.ts reads all of them (exercised by js/tests/wire.test.ts)."""
    wire_ts = (REPO_ROOT / "js" / "src" / "wire.ts").read_text(encoding="utf-8")
    declared = re.search(r"export type WireBytes = ([^;]+);", wire_ts)
    assert declared is not None
    for form in ("DataView", "Uint8Array", "ArrayBuffer", "string"):
        assert form in declared.group(1), f"WireBytes does not take {form}"
