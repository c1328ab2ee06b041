"""End to end: value weighting, the Flow tab and the Q/K tab in a real JupyterLab and Chromium.

One notebook shows ``w = %explain ...`` (the default MiniLM). The tests switch the toolbar to
value weighting and check that Python's trait follows and that the Statistics tab shows the share on
the first token ([CLS]) that Python computes from the value-weighted rows; set the trait from Python
and check the toolbar follows; open the Flow tab, click an attention edge and a head, and check the
selection (Python's traits included); open the Q/K tab and check that its softmax column is the
attention row Python holds. Screenshots go to test-output/valueflow-*.png.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .jupyterlab import JupyterLabServer, execute_in_kernel, poll_kernel, run_notebook, save_screenshot, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEXT = "The animal didn't cross the street because it was too tired."
CELLS = ["%load_ext tx_magic", f"w = %explain {TEXT}", "w"]
W = ".txm-root >> nth=0"
W_JS = "document.querySelectorAll('.txm-root')[0]"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> Any:
    page = new_page(viewport=(1400, 1200))
    run_notebook(page, server, "valueflow.ipynb", CELLS)
    wait_for_js(page, f"() => {W_JS}?.dataset.ready === '1'", "the widget drawn", timeout=30)
    return page


def test_value_weighting_from_the_toolbar_reaches_every_view_and_python(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 2; w.head = -1")
    page.locator(f'{W} >> .txm-tab[data-tab="stats"]').click()
    page.locator(f'{W} >> .txm-weigh[data-weighting="value"]').click()
    poll_kernel(page, "print(w.weighting)", "value", "w.weighting == 'value' after clicking the value button",
                timeout=30)
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"matrix\"] .txm-view-title')"
                      "?.textContent.includes('value-weighted')", "the matrix to say it is value-weighted",
                timeout=60)
    expected = json.loads(execute_in_kernel(page, """
import json
from tx_magic.analysis import head_stats, weighted_rows
_v = weighted_rows(w.trace.attention(), w.trace.value_norms(per_key=True))
_raw, _val = head_stats(w.trace.attention())["first"], head_stats(_v)["first"]
print(json.dumps({"value": [round(float(x), 3) for x in _val[2]], "raw": [round(float(x), 3) for x in _raw[2]]}))
""").strip())
    table = page.locator(f'{W} >> [data-view="stats"]')
    first_column = table.evaluate("""e => { const ths = [...e.querySelectorAll('th')];
        return ths.findIndex((th) => th.dataset.column === 'first'); }""")
    heads = len(expected["value"])
    wait_for_js(page, """([root, col, want, heads]) => { const view = document.querySelectorAll('.txm-root')[root]
            .querySelector('[data-view="stats"]');
        return want.every((v, h) => { const tr = view.querySelector(`tr[data-key="${2 * heads + h}"]`);
            return tr && Math.abs(Number(tr.children[col].textContent) - v) <= 0.0011; }); }""",
                "the Statistics tab to show Python's value-weighted first-token shares for layer 2",
                arg=[0, first_column, expected["value"], heads], timeout=30)
    assert sum(expected["value"]) < sum(expected["raw"])  # Kobayashi et al.: [CLS] carries less than its weight
    save_screenshot(page, "valueflow-value-weighted")


def test_python_sets_the_weighting_and_the_toolbar_follows(page: Any) -> None:
    for weighting in ("raw", "value", "raw"):
        execute_in_kernel(page, f"w.weighting = {weighting!r}")
        wait_for_js(page, f"() => {W_JS}.querySelector('.txm-weigh[data-weighting=\"{weighting}\"]')"
                          ".getAttribute('aria-pressed') === 'true'", f"the {weighting} button pressed")


def test_flow_tab_draws_routes_and_clicks_select_layer_and_head(page: Any) -> None:
    execute_in_kernel(page, "w.token = 0; w.layer = 0; w.head = -1")  # routes into [CLS]
    page.locator(f'{W} >> .txm-tab[data-tab="flow"]').click()
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"flow\"]')?.dataset.state === 'done'",
                "the Flow tab to draw the routes", timeout=60)
    flow = page.locator(f'{W} >> [data-view="flow"]')
    assert flow.get_attribute("data-token") == "0" and int(flow.get_attribute("data-edges") or 0) > 0
    expected = execute_in_kernel(page, "f = w.trace.flow(token=0); print(len(f[f.type != 'head']))").strip()
    assert flow.get_attribute("data-edges") == expected
    edge = flow.locator('.txm-flow-edge[data-type="attention"]').first
    layer, head = edge.get_attribute("data-layer"), edge.get_attribute("data-head")
    edge.dispatch_event("click")
    poll_kernel(page, "print(w.layer, w.head)", f"{layer} {head}", "w.layer, w.head follow a click on a flow edge")
    button = flow.locator(".txm-flow-head").nth(1)
    b_layer, b_head = button.get_attribute("data-layer"), button.get_attribute("data-head")
    button.click()
    poll_kernel(page, "print(w.layer, w.head)", f"{b_layer} {b_head}", "w.layer, w.head follow a click on a head")
    save_screenshot(page, "valueflow-flow")


def test_qk_tab_softmax_is_the_attention_row(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 1; w.head = 4; w.token = 3")
    page.locator(f'{W} >> .txm-tab[data-tab="qk"]').click()
    wait_for_js(page, f"""() => {{ const v = {W_JS}.querySelector('[data-view="qk"]');
        return v?.dataset.state === 'done' && v.dataset.query === '3' && v.dataset.head === '4'
            && v.dataset.layer === '1'; }}""", "the Q/K tab for query 3, head 4 of layer 1", timeout=60)
    got = page.locator(f'{W} >> [data-view="qk"]').evaluate(
        "v => [...v.querySelectorAll('.txm-qk-row[data-key]')]"
        ".map((r) => [Number(r.dataset.key), Number(r.dataset.softmax)])")
    row = json.loads(execute_in_kernel(page, "print(json.dumps(w.trace.attention()[1, 4, 3].tolist()))").strip())
    assert [k for k, _ in got] == list(range(len(row)))
    assert max(abs(p - row[k]) for k, p in got) < 1e-5
    save_screenshot(page, "valueflow-qk")


def test_a_saved_report_weighs_by_value_offline(context: Any, tmp_path: Any, minilm: Any) -> None:
    """The report inlines the value norms: the switch works from file://, with no kernel and no network."""
    import tx_magic

    from .test_report import assert_clean, open_report

    path = tx_magic.save_html(tx_magic.capture(minilm.model, minilm.tokenizer, TEXT), tmp_path / "value.html")
    with open_report(context, path) as opened:
        page = opened.page
        assert page.locator('.txm-tab[data-tab="flow"]').count() == 0  # no kernel to compute the flow
        page.locator('.txm-weigh[data-weighting="value"]').click()
        wait_for_js(page, "() => document.querySelector('[data-view=\"matrix\"] .txm-view-title')"
                          "?.textContent.includes('value-weighted')", "the report's matrix value-weighted")
        save_screenshot(page, "valueflow-report")
        assert_clean(opened)
