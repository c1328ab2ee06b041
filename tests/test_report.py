"""HTML reports: one self-contained page, exact data, safe inlining, a size budget; the static
fallback and its PNG; texts files; `%explain --save`."""

from __future__ import annotations

import base64
import html.parser
import json
import re
import struct
import zlib

import numpy as np
import pytest

import tx_magic
from tx_magic import Tokens, Trace, wire
from tx_magic.report import (
    DEFAULT_MAX_BYTES,
    ReportText,
    ReportTooLarge,
    fallback_html,
    render_html,
    render_report,
    save_html,
)
from tx_magic.report.batch import BatchItem, EmptyTextsFile, read_texts, run_each
from tx_magic.report.budget import Encoding, ranges
from tx_magic.report.html import HEADER_ID, _block_cost, script_json, script_text
from tx_magic.report.png import encode_png

EVIL = ["</script><img src=x onerror=alert(1)>", "<script>alert(1)</script>", "a\u2028b & <!-- c"]


def fake_trace(tokens: list[str], layers: int = 3, heads: int = 2, causal: bool = False, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    n = len(tokens)
    att = rng.random((layers, heads, n, n)).astype(np.float32)
    mask = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
    att = np.where(mask, att, 0)
    att /= att.sum(-1, keepdims=True)
    return Trace("fake/model", {"input": Tokens(tuple(tokens))}, {"self": att}, masks={"self": mask} if causal else {})


class Page(html.parser.HTMLParser):
    """The elements of a page and the text of its scripts, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in: dict[str, str | None] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in = dict(attrs)
            self.scripts.append((self._in, ""))

    def handle_data(self, data):
        if self._in is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = None

    def json(self, element_id: str):
        return json.loads(next(text for attrs, text in self.scripts if attrs.get("id") == element_id))


def decoded(block: dict) -> dict:
    return {k: base64.b64decode(v) if k in ("data", "scale", "index") else v for k, v in block.items()}


def decode_blocks(data: dict) -> dict[tuple[str, int], np.ndarray]:
    """The value blocks of a report's trace, decoded (uint8 dequantized), by (kind, layer)."""
    return {(b["kind"], b["layer"]): wire.decode_block(decoded(b)) for b in data["layers"]
            if b["dtype"] != wire.DTYPE_TOPK}


def budget_for(traces: list, layer_costs: int) -> int:
    """A max_bytes leaving exactly `layer_costs` bytes for layers after the page and its notice room."""
    page = len(render_html(traces, max_bytes=10**9).encode())
    exact = sum(_block_cost(t, k, Encoding()) * t.shape(k)[0] for t in traces for k in t.kinds)
    return page - exact + 2048 * len(traces) + layer_costs + 1


# -- the page ------------------------------------------------------------------------------------

def test_report_holds_every_layer_exactly_and_nothing_to_fetch(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "What is the capital of France?")
    page = Page(render_html(trace))
    blocks = decode_blocks(page.json("txm-trace-0"))
    assert sorted(blocks) == [("self", layer) for layer in range(6)]
    for (kind, layer), values in blocks.items():
        assert np.array_equal(values, trace.attention(kind)[layer])  # float32, bit for bit
    assert page.json("txm-trace-0")["meta"]["sequences"]["input"]["text"] == list(trace.tokens()[0])
    header = page.json(HEADER_ID)
    assert header["texts"][0]["omitted"] == []
    # One executable script (the bundle, inline); nothing loads from anywhere.
    code = [s for attrs, s in page.scripts if attrs.get("type") != "application/json"]
    assert len(code) == 1 and len(code[0]) > 10_000
    assert not [attrs for tag, attrs in page.tags if attrs.get("src") or attrs.get("href")]
    urls = set(re.findall(r"https?://[^\s\"'`)]+", code[0]))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # an XML namespace name, never fetched


def test_csp_allows_only_the_inlined_bundle():
    text = render_html(fake_trace(["a", "b"]))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1)
    assert "default-src 'none'" in csp
    bundle = Page(text).scripts[-1][1]
    digest = base64.b64encode(__import__("hashlib").sha256(bundle.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_token_text_cannot_close_the_script_or_add_elements():
    trace = fake_trace(["[CLS]", *EVIL, "[SEP]"])
    text = render_html([ReportText(trace, text=" ".join(EVIL), label=EVIL[0])], title=EVIL[1])
    page = Page(text)
    assert [t for t, _ in page.tags if t == "img"] == []
    assert [attrs.get("id") for attrs, _ in page.scripts] == [HEADER_ID, "txm-trace-0", None]  # and nothing else
    assert "</script><img" not in text and "<script>alert" not in text
    assert page.json("txm-trace-0")["meta"]["sequences"]["input"]["text"][1:4] == EVIL
    assert page.json(HEADER_ID)["texts"][0]["label"] == EVIL[0]
    assert f"<title>{__import__('html').escape(EVIL[1])}</title>" in text


def test_script_escapes():
    assert script_json({"t": "</script>&\u2028"}) == '{"t":"\\u003c/script\\u003e\\u0026\\u2028"}'
    assert json.loads(script_json({"t": EVIL})) == {"t": EVIL}
    assert script_text('x = "</script>", y = "</SCRIPT "') == 'x = "<\\/script>", y = "<\\/SCRIPT "'
    assert script_text('s.replace(/</g, "&lt;")') == 's.replace(/</g, "&lt;")'  # other "</" stay: regexes
    with pytest.raises(ValueError, match="<!--"):
        script_text("a = '<!--'")


def test_several_texts_make_one_report_with_a_selector():
    traces = [fake_trace(["a", "b", "c"]), fake_trace(["x", "y"], seed=1)]
    page = Page(render_html([ReportText(traces[0], "a b c"), ReportText(traces[1], "x y", label="second")]))
    header = page.json(HEADER_ID)
    assert [t["label"] for t in header["texts"]] == ["1. a b c", "second"]
    assert page.json("txm-trace-1")["meta"]["sequences"]["input"]["text"] == ["x", "y"]
    assert len(decode_blocks(page.json("txm-trace-1"))) == 3


def test_save_html_takes_a_widget_trace_or_list(tmp_path):
    trace = fake_trace(["a", "b"])
    for what in (trace, tx_magic.show(trace), [trace, trace]):
        path = save_html(what, tmp_path / "r.html")
        assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(TypeError, match="Trace"):
        render_html("not a trace")


# -- the size budget ----------------------------------------------------------------------------

def test_over_the_budget_layers_go_8_bit_then_are_left_out_and_the_report_says_so():
    trace = fake_trace([f"t{i}" for i in range(60)], layers=6, heads=4)  # 76.8 KB per layer in base64
    u8 = _block_cost(trace, "self", Encoding(wire.DTYPE_UINT8, 1))
    assert u8 < _block_cost(trace, "self", Encoding()) / 3.5  # ~4x more layers fit as 8-bit values
    rendered = render_report(trace, max_bytes=budget_for([trace], 6 * u8))
    page = Page(rendered.html)
    blocks = decode_blocks(page.json("txm-trace-0"))
    assert sorted(layer for _, layer in blocks) == list(range(6))
    for (kind, layer), values in blocks.items():
        exact = trace.attention(kind)[layer]
        assert np.abs(values - exact).max() <= exact.max() / 510 + 1e-7
    assert "8-bit" in rendered.notices[0] and "no kernel" in rendered.notices[0]

    budget = budget_for([trace], 3 * u8)
    rendered = render_report(trace, max_bytes=budget)
    assert len(rendered.html.encode()) <= budget
    page = Page(rendered.html)
    kept = sorted(layer for _, layer in decode_blocks(page.json("txm-trace-0")))
    assert kept == [0, 1, 2]
    assert page.json(HEADER_ID)["texts"][0]["omitted"] == [{"kind": "self", "layers": [3, 4, 5]}]
    notice = rendered.notices[0]
    assert "self layers 3-5 (of 6" in notice and "--max-bytes" in notice and "exact values" in notice
    assert notice in page.json("txm-trace-0")["meta"]["warnings"]  # shown by the renderer


def test_every_text_keeps_its_first_layers_when_space_runs_out():
    small, big = fake_trace(["a", "b"], layers=4), fake_trace([f"t{i}" for i in range(80)], layers=4, heads=4)

    def u8(t):
        return _block_cost(t, "self", Encoding(wire.DTYPE_UINT8, 1))

    page = Page(render_html([small, big], max_bytes=budget_for([small, big], 4 * u8(small) + 2 * u8(big))))
    assert len(decode_blocks(page.json("txm-trace-0"))) == 4
    assert sorted(layer for _, layer in decode_blocks(page.json("txm-trace-1"))) == [0, 1]


def test_a_long_trace_keeps_every_layer_as_a_pooled_overview():
    trace = fake_trace([f"t{i}" for i in range(600)], layers=3, heads=2, causal=True)
    pooled = _block_cost(trace, "self", Encoding(wire.DTYPE_UINT8, 2))
    rendered = render_report(trace, max_bytes=budget_for([trace], 3 * pooled))
    data = Page(rendered.html).json("txm-trace-0")
    assert [(b["layer"], b["dtype"], b["pool"], b["shape"]) for b in data["layers"]] == \
        [(layer, wire.DTYPE_UINT8, 2, [2, 300, 300]) for layer in range(3)]
    exact = trace.attention()[1]
    reference = exact.reshape(2, 300, 2, 300, 2).max((2, 4))
    assert np.abs(decode_blocks(data)[("self", 1)] - reference).max() <= reference.max() / 510 + 1e-7
    thumbs = base64.b64decode(data["meta"]["kinds"][0]["thumbnails"]["data"])
    assert len(thumbs) == 3 * 2 * 32 * 32  # the grid's overview of every layer and head
    assert "max-pooled" in rendered.notices[0] and "self 2x2 tokens" in rendered.notices[0]
    assert "Left out" not in rendered.notices[0]


def test_a_streamed_trace_report_holds_pooled_layers_and_top_keys(minilm, monkeypatch):
    from conftest import tiny_llama

    from tx_magic.capturing import memory

    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    monkeypatch.setattr(memory, "OVERVIEW_TILES", 12)
    trace = tx_magic.capture(tiny_llama(minilm.tokenizer.vocab_size), minilm.tokenizer, "the cat sat on the mat " * 8)
    assert trace.is_streamed() and trace.attentions["self"].tile == 8
    rendered = render_report(trace)
    data = Page(rendered.html).json("txm-trace-0")
    kinds = {(b["dtype"], b["layer"]) for b in data["layers"]}
    assert kinds == {(d, layer) for d in (wire.DTYPE, wire.DTYPE_TOPK) for layer in range(2)}
    assert {b["pool"] for b in data["layers"] if "pool" in b} == {8}
    assert set(data["meta"]["kinds"][0]["stats"]) == {"entropy", "max_weight", "dispersion", "distance", "first",
                                                      "previous", "self"}
    topk = next(decoded(b) for b in data["layers"] if b["dtype"] == wire.DTYPE_TOPK and b["layer"] == 1)
    _, values = wire.decode_topk(topk)
    np.testing.assert_allclose(values, trace.attentions["self"].top_values[1, ..., :4])
    assert "top keys" in rendered.notices[0] and "no kernel" in rendered.notices[0]


def test_a_budget_below_the_first_layer_is_an_error():
    with pytest.raises(ReportTooLarge, match="--max-bytes"):
        render_html(fake_trace([f"t{i}" for i in range(100)]), max_bytes=100_000)
    assert DEFAULT_MAX_BYTES == 20_000_000


def test_ranges():
    assert ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    assert ranges([]) == ""


# -- the static fallback -------------------------------------------------------------------------

def png_size_and_pixels(data: bytes) -> tuple[int, int, np.ndarray]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        assert struct.unpack(">I", crc)[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return width, height, rows[:, 1:].reshape(height, width, 3)


def test_png_encoder_round_trips():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    width, height, pixels = png_size_and_pixels(encode_png(image))
    assert (width, height) == (7, 5) and np.array_equal(pixels, image)


def test_fallback_shows_the_tokens_as_text_and_a_heat_map():
    trace = fake_trace(["[CLS]", *EVIL, "[SEP]"], causal=True)
    text = fallback_html(trace)
    page = Page(text)
    assert not page.scripts and [t for t, _ in page.tags if t == "img"] == ["img"]
    assert __import__("html").escape(EVIL[0]) in text and EVIL[0] not in text
    src = dict(page.tags[[t for t, _ in page.tags].index("img")][1])["src"]
    width, height, pixels = png_size_and_pixels(base64.b64decode(src.split(",", 1)[1]))
    assert width == height and width % 5 == 0
    cell = width // 5
    assert tuple(pixels[0, -1]) == (232, 232, 232)  # row 0 may not see the last key: masked grey
    assert tuple(pixels[-1, 0]) != (232, 232, 232)
    assert pixels[cell // 2 :: cell, cell // 2 :: cell].shape == (5, 5, 3)


def test_fallback_stays_small_for_long_texts():
    trace = fake_trace([f"tok{i}" for i in range(512)], layers=1, heads=2)
    text = fallback_html(trace)
    assert len(text.encode()) < 100_000
    assert "tok511" in text and "blocks of 4 x 4 tokens" in text


# -- texts files --------------------------------------------------------------------------------

def test_read_plain_lines_skipping_blank_ones(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\ufeffFirst text.\n\n  \nSecond {text}\n", encoding="utf-8")
    items, failures = read_texts(path)
    assert items == [BatchItem(1, "First text."), BatchItem(4, "Second {text}")] and failures == []


def test_read_json_lines_with_failures_kept_per_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "pair": "b"}\n{"source": "s", "target": "t"}\n{oops\n[1]\n'
                    '{"x": 1}\n{"text": 3}\n', encoding="utf-8")
    items, failures = read_texts(path)
    assert items == [BatchItem(1, "a", pair="b"), BatchItem(2, "s", target="t")]
    assert [(f.line, f.message.split(" ")[0]) for f in failures] == [
        (3, "not"), (4, "expected"), (5, "no"), (6, '"text"')]


def test_empty_texts_file(tmp_path):
    (tmp_path / "e.txt").write_text("\n  \n")
    with pytest.raises(EmptyTextsFile, match="empty"):
        read_texts(tmp_path / "e.txt")


def test_run_each_goes_on_after_a_failure():
    items = [BatchItem(1, "a"), BatchItem(2, "boom"), BatchItem(3, "c")]

    def job(item: BatchItem) -> str:
        if item.text == "boom":
            raise RuntimeError("it broke")
        return item.text.upper()

    done, failures = run_each(items, job, progress=False)
    assert [r for _, r in done] == ["A", "C"]
    assert [(f.line, f.message) for f in failures] == [(2, "RuntimeError: it broke")]


# -- %explain --save -----------------------------------------------------------------------------

def test_magic_save_writes_the_report_and_returns_the_widget(shell, tmp_path):
    from IPython.utils.capture import capture_output

    path = tmp_path / "my report.html"
    with capture_output() as out:
        w = shell.run_line_magic("explain", f'--save "{path}" The cat sat on the mat.')
    assert isinstance(w, tx_magic.AttentionWidget)
    assert f"wrote {path}" in out.stdout
    header = Page(path.read_text(encoding="utf-8")).json(HEADER_ID)
    assert header["texts"][0]["text"] == "The cat sat on the mat."


def test_magic_save_to_a_missing_folder_is_one_line_before_running(shell, tmp_path):
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        result = shell.run_cell(f"%explain --save {tmp_path}/no/such/r.html The cat sat.")
    assert not result.success
    text = out.stdout + out.stderr
    assert "does not exist" in text and "Traceback" not in text
