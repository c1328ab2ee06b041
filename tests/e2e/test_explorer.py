"""End to end: the explorer's views, export and keyboard in a real JupyterLab and Chromium.

The package's JupyterLab server and browser (conftest.py) and one notebook serve the module.
The notebook shows two widgets: the
default model on an English sentence (``w``), and the same model on CJK, emoji, right-to-left
and markup tokens (``intl``). The tests click a grid cell and check that the arc and matrix
views and the Python traits follow, export PNG and SVG from the toolbar and from Python
(``w.save_png`` / ``w.save_svg``, written once the kernel is idle), check a widget that is not
displayed fails clearly, drive the widget by keyboard, and take screenshots in JupyterLab's
dark theme and of the international tokens (``test-output/explorer-*.png``).
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from .jupyterlab import (
    OUTPUT_DIR,
    JupyterLabServer,
    execute_in_kernel,
    poll_kernel,
    run_notebook,
    save_screenshot,
    wait_for_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEXT = "The animal didn't cross the street because it was too tired."
INTL = "猫が座った 😀 שלום עולם مرحبا <script>alert(1)</script>"
CELLS = ["%load_ext tx_magic", f"w = %explain {TEXT}", "w", f"intl = %explain {INTL}", "intl"]

#: The first widget (w) and the second (intl), by their position on the page.
W = ".txm-root >> nth=0"
W_JS = "document.querySelectorAll('.txm-root')[0]"
INTL_JS = "document.querySelectorAll('.txm-root')[1]"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> Any:
    """The notebook, run, with both widgets drawn."""
    page = new_page(viewport=(1400, 1100))
    run_notebook(page, server, "explorer.ipynb", CELLS)
    wait_for_js(page, "() => document.querySelectorAll('.txm-root[data-ready=\"1\"]').length === 2",
                "both widgets drawn", timeout=30)
    page.txm_server = server
    return page


def _click_panel(page: Any, view: str, row: int, col: int) -> None:
    """Click panel (row, col) of a small-multiples view of the first widget."""
    multiples = page.locator(f'{W} >> [data-view="{view}"] .txm-multiples')
    d = multiples.evaluate("e => ({...e.dataset})")
    x = float(d["x0"]) + col * float(d["stepX"]) + float(d["cell"]) / 2
    y = float(d["y0"]) + row * float(d["stepY"]) + float(d["cell"]) / 2
    multiples.locator(".txm-multiples-overlay").click(position={"x": x, "y": y})


def test_grid_click_moves_arcs_matrix_and_python(page: Any) -> None:
    grid = page.locator(f'{W} >> [data-view="grid"]')
    assert grid.is_visible(), "the overview grid is open from the start"
    _click_panel(page, "grid", row=3, col=5)  # layers run down, heads across (6 x 12)
    wait_for_js(page, f"""() => {{ const r = {W_JS};
        const m = r.querySelector('[data-view="matrix"]'), a = r.querySelector('[data-view="arc"]');
        return m.dataset.drawnLayer === '3' && m.dataset.drawnHead === '5' && a.dataset.drawnLayer === '3'; }}""",
                "the matrix and arc views to show layer 3, head 5 after clicking the grid")
    assert page.locator(f"{W} >> select.txm-layer").input_value() == "3"
    poll_kernel(page, "print(w.layer, w.head)", "3 5", "w.layer, w.head == 3, 5 after clicking the grid")
    assert grid.get_attribute("data-selected") == "3,5"


def test_heads_tab_and_statistics_follow_the_selection(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 2; w.head = -1")
    page.locator(f'{W} >> .txm-tab[data-tab="heads"]').click()
    _click_panel(page, "heads", row=0, col=7)
    poll_kernel(page, "print(w.layer, w.head)", "2 7", "w.head == 7 after clicking head 7 in the heads tab")
    page.locator(f'{W} >> .txm-tab[data-tab="stats"]').click()
    rows = page.locator(f'{W} >> [data-view="stats"] tbody tr')
    assert rows.count() == 6 * 12
    selected = page.locator(f'{W} >> [data-view="stats"] tbody tr.txm-selected')
    assert selected.locator("td").nth(0).inner_text() == "2" and selected.locator("td").nth(1).inner_text() == "7"
    # The panel's numbers are Python's (trace.stats()).
    entropy = float(selected.locator("td").nth(3).inner_text())
    py = execute_in_kernel(page, "s = w.trace.stats()\nrows = s.to_dict('records') if hasattr(s, 'to_dict') else s\n"
                                 "r = [x for x in rows if (x['layer'], x['head']) == (2, 7)][0]\n"
                                 "print(f\"{r['entropy']:.3f}\")")
    assert f"{entropy:.3f}" == py.strip()
    page.locator(f'{W} >> .txm-tab[data-tab="grid"]').click()


def _download(page: Any, fmt: str) -> bytes:
    page.locator(f"{W} >> .txm-export").click()
    with page.expect_download(timeout=15_000) as info:
        page.locator(f'{W} >> .txm-menu-item[data-format="{fmt}"]').click()
    target = OUTPUT_DIR / f"explorer-export.{fmt}"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    info.value.save_as(str(target))
    return target.read_bytes()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_export_button_downloads_png_and_svg(page: Any) -> None:
    png = _download(page, "png")
    width, height = _png_size(png)
    assert len(png) > 5_000 and width > 600 and height > 300, (len(png), width, height)
    svg = _download(page, "svg")
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "animal" in texts and "all-MiniLM-L6-v2" in texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) > 16 * 16 / 2


def test_save_png_and_save_svg_from_python(page: Any) -> None:
    execute_in_kernel(page, "f_png = w.save_png('from_python.png')\nf_svg = w.save_svg('from_python.svg')")
    # The kernel reads the view's answer once idle: the files appear after the cell above ended.
    poll_kernel(page, "print(f_png.done() and f_svg.done())", "True", "save_png/save_svg to complete", timeout=20)
    out = execute_in_kernel(page, "print(f_png.result().name, f_png.result().stat().st_size, f_svg.result().name)")
    name, size, svg_name = out.split()
    assert (name, svg_name) == ("from_python.png", "from_python.svg") and int(size) > 5_000
    server = page.txm_server
    width, _ = _png_size((server.root_dir / "from_python.png").read_bytes())
    assert width > 1000, "scale 2 by default"
    assert ET.fromstring((server.root_dir / "from_python.svg").read_bytes()).tag.endswith("svg")


def test_saving_a_widget_that_is_not_displayed_fails_clearly(page: Any) -> None:
    execute_in_kernel(page, "import tx_magic.widget.exports\ntx_magic.widget.exports.EXPORT_TIMEOUT = 1.5\n"
                            "hidden = tx_magic.show(w.trace)\nf_hidden = hidden.save_png('hidden.png')")
    poll_kernel(page, "print(f_hidden.done())", "True", "the export of an undisplayed widget to fail", timeout=15)
    message = execute_in_kernel(page, "print(type(f_hidden.exception()).__name__, f_hidden.exception())")
    assert message.startswith("ExportError no view of this widget answered") and "display the widget" in message
    assert not (page.txm_server.root_dir / "hidden.png").exists()


def test_keyboard_moves_token_and_layer_without_triggering_jupyterlab(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 0; w.head = -1; w.token = -1")
    root = page.locator(W)
    root.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    poll_kernel(page, "print(w.token)", "1", "w.token == 1 after two ArrowDown presses")
    page.keyboard.press("]")
    page.keyboard.press("3")
    poll_kernel(page, "print(w.layer, w.head)", "1 3", "layer 1, head 3 from the keyboard")
    page.keyboard.press("Escape")
    poll_kernel(page, "print(w.token)", "-1", "Escape to unpin")
    types = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => c.model.type)")
    assert types == ["code"] * len(CELLS), "a key reached JupyterLab's command mode (e.g. 3 = markdown heading)"


def test_dark_theme_follows_jupyterlab(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    try:
        wait_for_js(page, f"() => {W_JS}.classList.contains('txm-dark') && {INTL_JS}.classList.contains('txm-dark')",
                    "the widgets to switch to the dark palette", timeout=20)
        background = page.evaluate(f"() => getComputedStyle({W_JS}).backgroundColor")
        channels = [int(x) for x in background[background.index("(") + 1:background.index(")")].split(",")[:3]]
        assert sum(channels) / 3 < 80, f"dark background expected, got {background}"
        page.wait_for_timeout(300)
        target = OUTPUT_DIR / "explorer-dark.png"
        page.locator(".jp-OutputArea-output:has(.txm-root) >> nth=0").screenshot(path=str(target))
        assert target.stat().st_size > 20_000
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        wait_for_js(page, f"() => !{W_JS}.classList.contains('txm-dark')", "the light palette back", timeout=20)


def test_cjk_emoji_and_right_to_left_tokens_render(page: Any) -> None:
    labels = page.evaluate(f"""() => [...{INTL_JS}.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')]
        .map(t => ({{text: t.textContent, dir: t.dir, width: t.scrollWidth}}))""")
    texts = [label["text"] for label in labels]
    for expected in ("猫", "😀", "ש", "م", "<", "script", ">"):  # MiniLM splits Hebrew and Arabic into letters
        assert any(expected in t for t in texts), f"no token shows {expected!r}: {texts}"
    assert all(label["dir"] == "auto" for label in labels)
    assert page.evaluate(f"() => {INTL_JS}.querySelectorAll('script, img').length") == 0, "tokens must stay text"
    # The fonts the tests install draw these scripts (no empty boxes): CJK and emoji glyphs are wide.
    widths = page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
        c.font = '16px monospace'; return ['猫', '😀', 'ש', 'a'].map(s => c.measureText(s).width); }""")
    assert widths[0] > widths[3] * 1.5 and widths[1] > widths[3] * 1.5, widths
    target = OUTPUT_DIR / "explorer-intl.png"
    page.locator(".jp-OutputArea-output:has(.txm-root) >> nth=1").screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    assert page.txm_errors == [], f"uncaught errors in the page: {page.txm_errors}"
    save_screenshot(page, "explorer-page")
