"""End to end: the drop-in bertviz and CircuitsVis calls in a real JupyterLab and Chromium. Calls copied from
bertviz's README and CircuitsVis's, run as a user would after changing only the import: the widgets draw,
and bertviz's ``html_action="return"`` page draws both in the notebook (in its own frame) and saved to a file
opened offline, on the layer and heads of the call."""

from __future__ import annotations

from typing import Any

import pytest

from .jupyterlab import run_notebook, save_screenshot, wait_for_js
from .test_report import READY, assert_clean, open_report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

CELLS = [
    "from transformers import AutoModel, AutoTokenizer\n"
    "from tx_magic.capturing.load import default_model_path\n"
    "model_name = str(default_model_path())  # bertviz's README: a hub id\n"
    "model = AutoModel.from_pretrained(model_name, output_attentions=True)\n"
    "tokenizer = AutoTokenizer.from_pretrained(model_name)\n"
    "inputs = tokenizer.encode('The cat sat on the mat', return_tensors='pt')\n"
    "outputs = model(inputs)\n"
    "attention = outputs.attentions\n"
    "tokens = tokenizer.convert_ids_to_tokens(inputs[0])",
    "from tx_magic.compat import head_view, model_view\n"
    "head_view(attention, tokens)",
    "from tx_magic.compat import attention_heads\n"
    "attention_heads(attention=attention[0][0], tokens=tokens)",
    "html_head_view = head_view(attention, tokens, layer=2, heads=[3, 5], html_action='return')\n"
    "with open('head_view.html', 'w') as file:\n"
    "    file.write(html_head_view.data)\n"
    "html_head_view",
]


@pytest.fixture(scope="module")
def notebook(server: Any, new_page: Any) -> Any:
    page = new_page()
    run_notebook(page, server, "compat.ipynb", CELLS, timeout=180)
    return page


def test_widgets_and_the_returned_page_draw_in_the_notebook(notebook: Any) -> None:
    wait_for_js(notebook, f"() => document.querySelectorAll('{READY}').length >= 2", "both drop-in widgets drawn",
                timeout=60)
    frame = notebook.frame_locator("iframe[title='tx_magic attention']")
    frame.locator(READY).wait_for(timeout=30_000)  # the page's renderer ran inside its frame, CSP and all
    assert frame.locator("select.txm-layer").input_value() == "2"
    pressed = frame.locator("button.txm-head").evaluate_all("bs => bs.map(b => b.getAttribute('aria-pressed'))")
    assert [i for i, p in enumerate(pressed) if p == "true"] == [3, 5]
    assert notebook.locator(".txm-error").count() == 0
    save_screenshot(notebook, "compat-notebook")
    notebook.locator("iframe[title='tx_magic attention']").scroll_into_view_if_needed()
    save_screenshot(notebook, "compat-notebook-frame")
    assert notebook.txm_errors == []


def test_the_saved_page_opens_offline_on_the_call_s_layer_and_heads(notebook: Any, server: Any, context: Any) -> None:
    del notebook  # ran the cells that wrote the file
    with open_report(context, server.root_dir / "head_view.html") as opened:
        page = opened.page
        assert page.locator("select.txm-layer").input_value() == "2"
        pressed = page.locator("button.txm-head").evaluate_all("bs => bs.map(b => b.getAttribute('aria-pressed'))")
        assert [i for i, p in enumerate(pressed) if p == "true"] == [3, 5]
        save_screenshot(page, "compat-head-view-page")
        assert_clean(opened)
