"""End to end: the pattern library's tabs and a user's view, in a real JupyterLab and in a report opened
offline from file:// in Chromium.

- JupyterLab: a view registered with `tx_magic.register_view` (examples/views/top_keys.js) draws in its own
  tab, follows the selection set from Python (layer, token), and its token text stays text; a user
  statistic colours the overview grid; a census widget's Census tab selects a head on click and, on
  choosing one of its best inputs, Python shows that input (``census_input``) and the views redraw.
- Report: a census report with the same view opens offline with nothing blocked and no error under its
  Content-Security-Policy; the Census tab switches the report's text; the view draws hostile tokens as
  text; a view whose source was changed after the report was written is refused by the policy.
"""

from __future__ import annotations

import base64
import pathlib
import re
from typing import Any

import numpy as np
import pytest

from .jupyterlab import JupyterLabServer, execute_in_kernel, poll_kernel, run_notebook, save_screenshot, wait_for_js
from .test_report import EVIL, READY, assert_clean, open_report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

VIEW = pathlib.Path(__file__).resolve().parents[2] / "examples" / "views" / "top_keys.js"
TEXT = "The animal didn't cross the street because it was too tired."
CELLS = [
    "%load_ext tx_magic",
    f"import numpy as np, tx_magic\ntx_magic.register_view('Top keys', {str(VIEW)!r})\n"
    "tx_magic.register_statistic('diagonal', lambda a, t: float(np.trace(a)) / len(t))",
    f"w = %explain {TEXT}",
    "w",
    "counts = {'repeated': 2, 'duplicate': 1, 'natural': 2, 'long': 0}\n"
    "c = tx_magic.census(counts=counts, progress=False)\ncw = c.show()",
    "cw",
    "a = w.trace\nb = tx_magic.capture_text(text='The animal didn\\'t cross the river because it was too tired.')\n"
    "cmp = tx_magic.compare(a, b).show()",
    "cmp",
    "rec = tx_magic.Recorder(*tx_magic.api.resolve_model()[:2], 'A short text to follow.')\n"
    "for step in (0, 10, 20):\n    rec.snapshot(step)\nrw = rec.show()",
    "rw",
]
W_JS = "document.querySelectorAll('.txm-root')[0]"
CW_JS = "document.querySelectorAll('.txm-root')[1]"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> Any:
    page = new_page(viewport=(1400, 1200))
    run_notebook(page, server, "patterns.ipynb", CELLS, timeout=180)
    wait_for_js(page, "() => document.querySelectorAll('.txm-root[data-ready=\"1\"]').length === 4",
                "the explain, census, compare and recorder widgets drawn", timeout=90)
    return page


def test_a_registered_view_draws_in_its_tab_and_follows_the_selection(page: Any) -> None:
    page.locator('.txm-root >> nth=0 >> .txm-tab[data-tab="user-0"]').click()
    wait_for_js(page, f"() => {W_JS}.querySelectorAll('[data-view=\"user-0\"] .top-keys li').length === 8",
                "the user view's list of 8 keys")
    tab = page.locator('.txm-root >> nth=0 >> .txm-tab[data-tab="user-0"]')
    assert tab.inner_text() == "Top keys"
    execute_in_kernel(page, "w.layer = 3; w.head = 5; w.token = 2")
    wait_for_js(page, f"""() => {{ const el = {W_JS}.querySelector('[data-view="user-0"] .txm-user-body');
        return el.dataset.layer === '3' && el.dataset.query === '2'; }}""", "the view to follow layer 3, token 2")
    title = page.locator('.txm-root >> nth=0 >> [data-view="user-0"] .top-keys-title').inner_text()
    assert title.startswith("layer 3, head 5")
    # The view's numbers are the trace's: the top key of token 2 in layer 3, head 5.
    top = page.locator('.txm-root >> nth=0 >> [data-view="user-0"] .top-keys li >> nth=0').get_attribute("data-key")
    expected = execute_in_kernel(page, "print(int(w.trace.attention()[3, 5, 2].argmax()))").strip()
    assert top == expected
    # Clicking an item selects through the shared store, which Python sees.
    execute_in_kernel(page, "w.layer = 1")
    page.locator('.txm-root >> nth=0 >> [data-view="user-0"] .top-keys li >> nth=0').click()
    poll_kernel(page, "print(w.layer)", "1", "w.layer after clicking in the view")


def test_a_user_statistic_is_a_column_and_colours_the_overview(page: Any) -> None:
    page.locator('.txm-root >> nth=0 >> .txm-tab[data-tab="stats"]').click()
    header = page.locator('.txm-root >> nth=0 >> [data-view="stats"] th[data-column="diagonal"]')
    assert header.inner_text() == "diagonal"
    row = page.locator('.txm-root >> nth=0 >> [data-view="stats"] tbody tr[data-key="0"]')
    shown = float(row.locator("td.txm-user-stat").inner_text())
    py = execute_in_kernel(page, "s = w.trace.stats()\n"
                                 "print(f\"{s[(s.layer == 0) & (s['head'] == 0)].diagonal.item():.3f}\")")
    assert f"{shown:.3f}" == py.strip()
    page.locator('.txm-root >> nth=0 >> .txm-tab[data-tab="grid"]').click()
    page.locator(".txm-root >> nth=0 >> select.txm-grid-colour").select_option("diagonal")
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"grid\"]').dataset.colour === 'diagonal'",
                "the overview coloured by the user statistic")


def test_census_tab_selects_heads_and_shows_their_best_inputs(page: Any) -> None:
    cw = ".txm-root >> nth=1"
    assert page.locator(f'{cw} >> [data-view="census"]').is_visible(), "the Census tab is open from the start"
    page.locator(f'{cw} >> [data-view="census"] .txm-cell[data-row="0"][data-col="2"]').click()
    poll_kernel(page, "print(cw.layer, cw.head)", "0 2", "the census click selects layer 0, head 2")
    detail = page.locator(f'{cw} >> [data-view="census"] .txm-census-evidence')
    assert detail.inner_text().startswith("layer 0 · head 2")
    current = int(execute_in_kernel(page, "print(cw.census_input)").strip())
    buttons = page.locator(f'{cw} >> [data-view="census"] .txm-census-input')
    inputs = [int(b.get_attribute("data-input")) for b in buttons.all()]
    target = next(i for i in inputs if i != current)
    page.locator(f'{cw} >> [data-view="census"] .txm-census-input[data-input="{target}"] >> nth=0').click()
    poll_kernel(page, "print(cw.census_input, cw.trace is c.trace(cw.census_input))", f"{target} True",
                "Python to show the chosen input", timeout=15)
    wait_for_js(page, f"""() => {{ const r = {CW_JS};
        const d = r && r.querySelector('[data-view="census"] .txm-census-input.txm-on');
        return r.dataset.ready === '1' && d && d.dataset.input === '{target}'; }}""",
                "the census widget to redraw the new input")
    tokens = execute_in_kernel(page, "print(len(cw.trace.tokens()[0]))").strip()
    drawn = page.evaluate(f"() => {CW_JS}.querySelectorAll("
                          "'[data-view=\"arc\"] .txm-token[data-side=\"query\"]').length")
    assert str(drawn) == tokens
    save_screenshot(page, "patterns-census")


def test_compare_and_training_tabs_draw_and_select(page: Any) -> None:
    cmp, rw = ".txm-root >> nth=2", ".txm-root >> nth=3"
    assert page.locator(f'{cmp} >> [data-view="compare"]').is_visible(), "the Compare tab is open from the start"
    note = page.locator(f"{cmp} >> .txm-compare-note").inner_text()
    assert "differ between A and B" in note
    execute_in_kernel(page, "cmp.layer = 2; cmp.head = 4")
    wait_for_js(page, """() => { const r = document.querySelectorAll('.txm-root')[2];
        const v = r.querySelector('[data-view="compare"]');
        return v.querySelectorAll('canvas').length === 3 && v.textContent.includes('layer 2, head 4'); }""",
                "A, B and A - B of layer 2, head 4")
    largest = float(page.locator(f"{cmp} >> .txm-compare-matrices").get_attribute("data-largest"))
    expected = float(execute_in_kernel(page, "print(abs(cmp.comparison.difference()[2, 4]).max())"))
    assert largest == pytest.approx(expected, rel=1e-5)
    page.locator(f"{cmp} >> .txm-compare-table tr[data-key] >> nth=0").click()
    first = page.locator(f"{cmp} >> .txm-compare-table tr[data-key] >> nth=0").get_attribute("data-key")
    poll_kernel(page, "print(cmp.layer * 12 + cmp.head)", first, "a click on the largest change selects that head")
    assert page.locator(f'{rw} >> [data-view="training"]').is_visible(), "the Training tab is open from the start"
    slider = page.locator(f"{rw} >> .txm-train-step")
    slider.fill("1")
    poll_kernel(page, "print(rw.step)", "1", "the slider sets rw.step")
    assert page.locator(f"{rw} >> .txm-train-label").inner_text() == "step 10 (2 of 3)"
    assert page.locator(f"{rw} >> .txm-train-fluct .txm-cell").count() == 6 * 3


@pytest.fixture(scope="module")
def reports(tmp_path_factory, minilm) -> dict[str, pathlib.Path]:
    import tx_magic
    from tx_magic.analysis import unregister_statistic
    from tx_magic.report import ReportText, save_html
    from tx_magic.wire import unregister_view

    folder = tmp_path_factory.mktemp("pattern-reports")
    tx_magic.register_view("Top keys", VIEW)
    tx_magic.register_statistic("diagonal", lambda a, t: float(np.trace(a)) / len(t))
    try:
        counts = {"repeated": 2, "duplicate": 1, "natural": 2, "long": 0}
        c = tx_magic.census(minilm.model, minilm.tokenizer, counts=counts, progress=False)
        census = c.save_html(folder / "census.html", texts=3)
        n = len(EVIL) + 2
        att = np.full((2, 2, n, n), 1.0 / n, dtype=np.float32)
        trace = tx_magic.Trace("evil", {"input": tx_magic.Tokens(("[CLS]", *EVIL, "[SEP]"))}, {"self": att})
        evil = save_html(ReportText(trace, " ".join(EVIL)), folder / "evil.html")
    finally:
        unregister_view("Top keys")
        unregister_statistic("diagonal")
    html = evil.read_text(encoding="utf-8")
    url = re.search(r'"(data:text/javascript;base64,[^"]+)"', html).group(1)
    changed = base64.b64encode(base64.b64decode(url.split(",", 1)[1]) + b"\ndocument.title = 'tampered';").decode()
    tampered = folder / "tampered.html"
    # The import map's integrity and the policy still hold the original's hash; only the source changed.
    tampered.write_text(html.replace(url.split(",", 1)[1], changed), encoding="utf-8")
    return {"census": census, "evil": evil, "tampered": tampered}


def test_census_report_opens_offline_and_switches_texts(context, reports) -> None:
    with open_report(context, reports["census"]) as opened:
        p = opened.page
        assert p.locator('[data-view="census"]').is_visible()
        assert "script-src 'sha256-" in p.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
        p.locator('[data-view="census"] .txm-cell[data-row="1"][data-col="3"]').click()
        wait_for_js(p, "() => document.querySelector('.txm-census-detail')?.dataset.head === '1,3'",
                    "head 1, 3's evidence")
        enabled = p.locator('.txm-census-input:not([disabled])')
        assert enabled.count() > 0, "the census lists inputs this report holds"
        choice = next(b for b in enabled.all() if "txm-on" not in (b.get_attribute("class") or ""))
        wanted = choice.get_attribute("data-input")
        choice.click()
        wait_for_js(p, f"() => document.querySelector('.txm-census-input.txm-on')?.dataset.input === '{wanted}'",
                    "the report to show the chosen input")
        assert p.locator(READY).count() == 1
        p.locator('.txm-tab[data-tab="user-0"]').click()
        wait_for_js(p, "() => document.querySelectorAll('[data-view=\"user-0\"] .top-keys li').length > 0",
                    "the user view to draw in the report")
        assert_clean(opened)


def test_a_user_view_keeps_hostile_tokens_as_text_in_a_report(context, reports) -> None:
    with open_report(context, reports["evil"]) as opened:
        p = opened.page
        p.locator('.txm-tab[data-tab="user-0"]').click()
        wait_for_js(p, "() => document.querySelectorAll('[data-view=\"user-0\"] .top-keys li').length > 0",
                    "the user view over hostile tokens")
        shown = p.locator('[data-view="user-0"] .top-keys-token').all_inner_texts()
        assert set(EVIL) <= set(shown)
        assert p.locator('[data-view="user-0"] img, [data-view="user-0"] script, [data-view="user-0"] b').count() == 0
        assert_clean(opened)


def test_a_changed_view_is_refused_by_the_policy(context, reports) -> None:
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        p.goto(reports["tampered"].as_uri(), wait_until="domcontentloaded")
        wait_for_js(p, f"() => !!document.querySelector('{READY}')", "the report drawn despite the refused view")
        p.locator('.txm-tab[data-tab="user-0"]').click()
        wait_for_js(p, "() => !!document.querySelector('[data-view=\"user-0\"] .txm-error')", "the view's error box")
        assert "could not load the view" in p.locator('[data-view="user-0"] .txm-error').inner_text()
        assert p.title() != "tampered"
        assert any("Content Security Policy" in e for e in errors), errors
    finally:
        p.close()
