"""End to end: reports open from file:// in a real (headless) Chromium with every request that is
not a file aborted and recorded, draw, respond to hover, layer and text changes, and keep token
text as text.

Reports are written by the command line (`tx_magic.cli.main`) with the embedded default model,
and by `render_html` for a trace whose tokens are HTML and script. First-draw times go to
``test-output/report-timings.json``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tx_magic import Tokens, Trace
from tx_magic.cli import main
from tx_magic.report import ReportText, save_html

from .jupyterlab import OUTPUT_DIR, save_screenshot, wait_for_attribute, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEXT = "The animal didn't cross the street because it was too tired."
SECOND = "What is the capital of France?"
EVIL = ["</script><img src=x onerror=alert(1)>", "<script>alert(1)</script>", "<b onmouseover=alert(1)>x</b>"]

ARC = '[data-view="arc"]'
MATRIX = '[data-view="matrix"]'
QUERY_TOKENS = f'{ARC} .txm-token[data-side="query"]'
READY = '.txm-root[data-ready="1"]'


@dataclass
class Opened:
    """A report open in a page, and what the page tried: blocked requests, dialogs, errors."""

    page: Any
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    first_draw_ms: float = 0.0


@pytest.fixture(scope="module")
def reports(tmp_path_factory, minilm) -> dict[str, Any]:
    """The reports under test, written once: single text, two texts in one file, hostile tokens."""
    folder = tmp_path_factory.mktemp("reports")
    single, multi = folder / "single.html", folder / "multi.html"
    assert main(["report", "--text", TEXT, "--output", str(single)]) == 0
    texts = folder / "texts.txt"
    texts.write_text(f"{TEXT}\n{SECOND}\n", encoding="utf-8")
    assert main(["report", "--texts-file", str(texts), "--one-file", "--output", str(multi)]) == 0
    n = len(EVIL) + 2
    att = np.full((2, 2, n, n), 1.0 / n, dtype=np.float32)
    trace = Trace("<img src=x onerror=alert(1)>", {"input": Tokens(("[CLS]", *EVIL, "[SEP]"))}, {"self": att},
                  warnings=["<script>alert(1)</script> as a warning"])
    evil = save_html(ReportText(trace, " ".join(EVIL), label=EVIL[1]), folder / "evil.html", title=EVIL[0])
    return {"single": single, "multi": multi, "evil": evil, "seq2seq": save_html(seq2seq(), folder / "seq2seq.html")}


def seq2seq() -> ReportText:
    """An encoder-decoder trace: three kinds, a causal decoder and an explicit mask on cross attention."""
    source, target = Tokens(("▁The", "▁cat", "</s>", "<pad>")), Tokens(("<pad>", "▁Die", "▁Katze"))
    rng = np.random.default_rng(0)

    def probs(shape: tuple[int, ...], mask: np.ndarray) -> np.ndarray:
        p = np.where(mask, rng.random(shape), 0).astype(np.float32)
        return p / p.sum(-1, keepdims=True)

    causal = np.tril(np.ones((3, 3), dtype=bool))
    no_pad = np.array([[True, True, True, False]] * 3)
    trace = Trace("tiny-t5", {"source": source, "target": target}, {
        "encoder": probs((2, 2, 4, 4), np.ones((4, 4), dtype=bool)),
        "decoder": probs((3, 2, 3, 3), causal),
        "cross": probs((3, 2, 3, 4), no_pad),
    }, masks={"decoder": causal, "cross": no_pad})
    return ReportText(trace, "The cat", target="Die Katze")


@contextlib.contextmanager
def open_report(context: Any, path: Any) -> Iterator[Opened]:
    page = context.new_page()
    opened = Opened(page)

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            opened.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    start = time.perf_counter()
    page.goto(path.as_uri(), wait_until="domcontentloaded")
    wait_for_js(page, f"() => !!document.querySelector('{READY}') || !!document.querySelector('.txm-error')",
                f"{READY} in {path.name}", timeout=20)
    opened.first_draw_ms = (time.perf_counter() - start) * 1000
    errors = page.locator(".txm-error")
    if errors.count():
        save_screenshot(page, f"report-error-{path.stem}")
        pytest.fail(f"{path.name} shows an error box: {errors.first.inner_text()!r}", pytrace=False)
    try:
        yield opened
    finally:
        page.close()


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    times: dict[str, float] = {}
    yield times
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "report-timings.json").write_text(json.dumps(times, indent=2) + "\n")


def query_texts(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(QUERY_TOKENS).all_inner_texts()]


def assert_clean(opened: Opened) -> None:
    assert opened.blocked == [], f"the report asked the network for {opened.blocked}"
    assert opened.dialogs == [], f"a dialog opened: {opened.dialogs}"
    assert opened.errors == [], f"errors in the page: {opened.errors}"


def test_single_report_draws_offline_and_responds(context, reports, timings):
    with open_report(context, reports["single"]) as opened:
        page = opened.page
        timings["single_first_draw_ms"] = round(opened.first_draw_ms, 1)
        assert "animal" in query_texts(page)
        page.locator(f'{QUERY_TOKENS}[data-index="2"]').hover()
        wait_for_attribute(page, MATRIX, "data-focus-row", "2")
        wait_for_attribute(page, ARC, "data-focus-token", "2")
        page.select_option("select.txm-layer", "3")
        wait_for_attribute(page, MATRIX, "data-drawn-layer", "3")
        page.locator(f'{QUERY_TOKENS}[data-index="4"]').hover()
        wait_for_attribute(page, MATRIX, "data-focus-row", "4")
        save_screenshot(page, "report-single")
        page.click("button.txm-export")  # the CSP still lets the renderer make a picture
        with page.expect_download(timeout=20_000) as download:
            page.click('.txm-menu-item[data-format="png"]')
        assert download.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert_clean(opened)


def test_text_selector_switches_the_data(context, reports, timings):
    with open_report(context, reports["multi"]) as opened:
        page = opened.page
        timings["multi_first_draw_ms"] = round(opened.first_draw_ms, 1)
        first = query_texts(page)
        assert "animal" in first
        options = page.locator("select.txm-text-select option").all_inner_texts()
        assert options == [f"line 1: {TEXT}", f"line 2: {SECOND}"]
        page.select_option("select.txm-layer", "2")
        wait_for_attribute(page, MATRIX, "data-drawn-layer", "2")
        page.select_option("select.txm-text-select", "1")
        wait_for_js(page, f"() => [...document.querySelectorAll('{QUERY_TOKENS}')]"
                    ".some(t => t.textContent.trim() === 'France')",
                    "the second text's tokens after switching")
        wait_for_js(page, f"() => !!document.querySelector('{READY}')", "the second text drawn")
        assert query_texts(page) != first
        assert page.locator(".txm-report-source").inner_text() == SECOND
        wait_for_attribute(page, MATRIX, "data-drawn-layer", "2")  # the layer chosen stays
        page.locator(f'{QUERY_TOKENS}[data-index="2"]').hover()
        wait_for_attribute(page, MATRIX, "data-focus-row", "2")
        assert_clean(opened)


def test_token_text_never_runs_as_html(context, reports):
    with open_report(context, reports["evil"]) as opened:
        page = opened.page
        tokens = query_texts(page)
        assert tokens[1:4] == EVIL
        for text in EVIL:
            assert page.locator(QUERY_TOKENS).filter(has_text=text).first.is_visible()
        page.locator(f'{QUERY_TOKENS}[data-index="1"]').hover()
        page.locator(f'{QUERY_TOKENS}[data-index="3"]').hover()
        wait_for_attribute(page, MATRIX, "data-focus-row", "3")
        injected = page.evaluate("""() => ({
            images: document.querySelectorAll('img').length,
            scripts: document.querySelectorAll('script').length,
            bold: document.querySelectorAll('.txm-root b, .txm-report-head b').length,
            title: document.title,
            heading: document.querySelector('.txm-report-title').textContent })""")
        assert injected == {"images": 0, "scripts": 3, "bold": 0, "title": EVIL[0], "heading": EVIL[0]}
        assert page.get_by_text("<script>alert(1)</script> as a warning").first.is_visible()
        assert_clean(opened)


def test_encoder_decoder_report_switches_kinds(context, reports):
    with open_report(context, reports["seq2seq"]) as opened:
        page = opened.page
        assert page.locator(".txm-report-source").inner_text() == "The cat  →  Die Katze"
        page.click('button.txm-kind[data-kind="cross"]')
        wait_for_attribute(page, MATRIX, "data-drawn-kind", "cross")
        page.select_option("select.txm-layer", "2")
        wait_for_attribute(page, MATRIX, "data-drawn-layer", "2")
        assert query_texts(page) == ["<pad>", "▁Die", "▁Katze"]  # the target reads the source
        keys = [t.strip() for t in page.locator(f'{ARC} .txm-token[data-side="key"]').all_inner_texts()]
        assert keys == ["▁The", "▁cat", "</s>", "<pad>"]
        assert_clean(opened)
