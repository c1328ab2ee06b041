"""Saved notebooks: the widget's output carries `fallback_html` as text/html beside the widget view,
so a notebook viewed where no widget manager runs (GitHub, nbviewer, nbconvert without widget
state) shows the attention instead of a blank.

Runs a real kernel with nbclient (about 15 s).
"""

from __future__ import annotations

import pytest

TEXT = "The animal didn't cross the street because it was too tired."



@pytest.fixture(scope="module")
def notebook():
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in ("%load_ext tx_magic", f"%explain {TEXT}")]
    nbclient.NotebookClient(nb, timeout=180, store_widget_state=True).execute()
    return nb


def widget_output(nb) -> dict:
    return next(o for o in nb.cells[1].outputs if o["output_type"] == "execute_result")


def test_stored_output_has_the_fallback_beside_the_widget(notebook):
    data = widget_output(notebook)["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert 'class="txm-fallback"' in html and "animal" in html and "data:image/png;base64," in html
    assert "<script" not in html and len(html.encode()) < 100_000


def test_nbconvert_without_widget_state_shows_the_fallback(notebook):
    import copy

    from nbconvert import HTMLExporter

    nb = copy.deepcopy(notebook)
    nb.metadata.pop("widgets", None)  # as a viewer that has no widget state sees it
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert 'class="txm-fallback"' in body and "tired" in body
