"""The pattern library on the wire, in widgets, reports and the command line: panels are what the TypedDicts
declare and hold the analysis's numbers; registered views travel with widgets and reports (admitted by hash
only); user statistics reach the metadata; `tx-magic census` writes a report and prints the labels."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import numpy as np
import pytest
import torch
from test_wire_in_step import conforms
from wired import WordIds, wired

import tx_magic
from tx_magic import wire
from tx_magic.analysis import unregister_statistic
from tx_magic.cli import main
from tx_magic.core.errors import OptionError
from tx_magic.report import render_census, render_html
from tx_magic.wire import unregister_view

VIEW = "export function render(view) { view.el.textContent = view.tokens.queries.join(' '); }"
SMALL = {"repeated": 2, "duplicate": 2, "natural": 2, "long": 0}


@pytest.fixture(scope="module")
def small_census():
    return tx_magic.census(wired(), WordIds(), counts=SMALL, progress=False)


@pytest.fixture
def view():
    tx_magic.register_view("Mine", VIEW)
    yield
    unregister_view("Mine")


def f32(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").reshape(shape)


def test_the_census_panel_holds_the_census_numbers(small_census):
    c = small_census
    panel = wire.encode_census(c, 1, texts=[0, -1, 1, -1, -1, -1, -1, -1])
    conforms(panel, wire.CensusPanel, "census")
    shape = (len(c.patterns), *c.shape)
    np.testing.assert_allclose(f32(panel["means"], shape), np.stack([c.mean(p) for p in c.patterns]), rtol=1e-6)
    np.testing.assert_array_equal(np.frombuffer(panel["shown"], "<i4").reshape(shape),
                                  np.stack([c.shown(p) for p in c.patterns]))
    best = np.frombuffer(panel["best"], "<i4").reshape((*shape, wire.CENSUS_BEST))
    p = c.patterns.index("induction")
    assert list(best[p, 1, 0][best[p, 1, 0] >= 0]) == c.best_inputs(1, 0, "induction")
    assert panel["labels"][1][0] == "induction" and panel["evidence"][1][0] == str(c.evidence(1, 0))
    assert panel["current"] == 1 and panel["texts"][2] == 1


def test_the_census_widget_swaps_the_input_it_shows(small_census):
    w = small_census.show(start=2)
    assert w.census_input == 2 and w.trace is small_census.trace(2) and w._census["current"] == 2
    w.layer, w.head = 1, 0
    w.census_input = 0
    assert w.trace is small_census.trace(0) and w._census["current"] == 0
    assert w._meta["sequences"]["input"]["text"] == list(small_census.trace(0).tokens()[0].text)
    assert (w.layer, w.head) == (1, 0)
    with pytest.raises(Exception, match="census_input must be in 0"):
        w.census_input = 99


def test_compare_and_training_panels_are_what_the_typeddicts_declare(minilm):
    a = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat on the mat.")
    b = tx_magic.capture(minilm.model, minilm.tokenizer, "The dog sat on the rug.")
    panel = wire.encode_comparison(tx_magic.compare(a, b))
    conforms(panel, wire.ComparisonPanel, "compare")
    conforms(panel["meta"], wire.Meta, "compare.meta")
    entropy = f32(panel["deltas"]["self"]["entropy"], (6, 12))
    np.testing.assert_allclose(entropy, a.stats()["entropy"].to_numpy().reshape(6, 12)
                               - b.stats()["entropy"].to_numpy().reshape(6, 12), atol=1e-6)
    assert len(panel["layers"]) == 6  # B's layers, float32 within the budget
    w = tx_magic.compare(a, b).show()
    assert w.trace is a and w._compare["labels"] == ["A", "B"]

    rec = tx_magic.Recorder(wired(), WordIds(), "a b c d e f g h i j")
    for step in range(3):
        with torch.no_grad():
            rec.model.layers[1].wq.mul_(0.5)
        rec.snapshot(step * 5)
    training = wire.encode_training(rec)
    conforms(training, wire.TrainingPanel, "training")
    kind = training["kinds"][0]
    np.testing.assert_allclose(f32(kind["fluctuation"], (3, 2)), rec.fluctuation(), equal_nan=True, rtol=1e-6)
    thumbs = np.frombuffer(kind["thumbnails"], np.uint8).reshape(3, 2, 4, 10, 10)
    np.testing.assert_array_equal(thumbs[1], np.rint(rec.traces[1].attention() * 255).astype(np.uint8))
    rw = rec.show()
    assert rw.step == 2 and rw.trace is rec.traces[-1]


def test_user_statistics_reach_the_metadata(minilm):
    tx_magic.register_statistic("diagonal", lambda att, tokens: float(np.trace(att)) / len(tokens))
    try:
        trace = tx_magic.capture(minilm.model, minilm.tokenizer, "Statistics in the metadata.")
        meta = wire.encode_meta(trace)
        conforms(meta, wire.Meta, "meta")
        sent = f32(meta["kinds"][0]["user_stats"]["diagonal"], (6, 12))
        att = trace.attention()
        np.testing.assert_allclose(sent, np.trace(att, axis1=2, axis2=3) / att.shape[-1], rtol=1e-6)
    finally:
        unregister_statistic("diagonal")
    assert "user_stats" not in wire.encode_meta(trace)["kinds"][0]


def test_views_travel_with_widgets_and_are_admitted_by_hash_in_reports(minilm, view):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "A view.")
    w = tx_magic.show(trace)
    assert w._views == [{"name": "Mine", "source": VIEW}]
    page = render_html(trace)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    imports = re.search(r'<script type="importmap">(.*?)</script>', page).group(1)
    digest = "sha256-" + base64.b64encode(hashlib.sha256(VIEW.encode()).digest()).decode()
    mapped = json.loads(imports)
    url = mapped["imports"]["txm-view:0"]
    assert base64.b64decode(url.split(",", 1)[1]).decode() == VIEW
    assert mapped["integrity"][url] == digest
    sources = csp.split("script-src ", 1)[1].split(";", 1)[0].split()
    imports_digest = "sha256-" + base64.b64encode(hashlib.sha256(imports.encode()).digest()).decode()
    assert f"'{digest}'" in sources and f"'{imports_digest}'" in sources and len(sources) == 3
    assert "blob:" not in sources and "data:" not in sources and "'unsafe-inline'" not in sources
    header = json.loads(re.search(r'id="txm-report-data">(.*?)</script>', page).group(1))
    assert header["views"] == ["Mine"]


def test_views_report_without_views_keeps_its_one_hash(minilm):
    page = render_html(tx_magic.capture(minilm.model, minilm.tokenizer, "No view."))
    assert "importmap" not in page
    assert page.count("'sha256-") == 1


def test_bad_views_get_one_clear_message(tmp_path):
    with pytest.raises(OptionError, match="imports another module"):
        tx_magic.register_view("x", 'import {a} from "https://cdn.example/a.js"; export function render() {}')
    with pytest.raises(OptionError, match="no render function"):
        tx_magic.register_view("x", "export const a = 1;")
    with pytest.raises(OptionError, match="no view module at"):
        tx_magic.register_view("x", str(tmp_path / "missing.js"))
    path = tmp_path / "v.mjs"
    path.write_text(VIEW)
    tx_magic.register_view("from a file", path)
    try:
        assert wire.encode_views()[-1] == {"name": "from a file", "source": VIEW}
    finally:
        unregister_view("from a file")


def test_census_report_holds_the_representative_inputs(small_census):
    rendered = render_census(small_census, texts=2)
    header = json.loads(re.search(r'id="txm-report-data">(.*?)</script>', rendered.html).group(1))
    chosen = small_census.representative(2)
    assert [t["label"] for t in header["texts"]] == [f"#{i} {small_census.inputs[i].label}" for i in chosen]
    texts = header["census"]["texts"]
    assert [texts[i] for i in chosen] == [0, 1] and texts.count(-1) == len(small_census.inputs) - 2


def test_the_census_command_writes_a_report_and_prints_the_labels(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat and looked at the dog.\nA second sentence of the texts file here.\n")
    out = tmp_path / "census.html"
    assert main(["census", "--texts-file", str(texts), "--no-probes", "-o", str(out), "--texts", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "72 heads over 2 inputs" in printed
    header = json.loads(re.search(r'id="txm-report-data">(.*?)</script>', out.read_text()).group(1))
    assert header["census"]["inputs"][0].startswith("text: The cat sat")
    assert main(["census", "--no-probes", "-o", str(out)]) == 2
    assert "--no-probes needs texts" in capsys.readouterr().err
    assert main(["census", "-o", str(tmp_path / "nowhere" / "c.html"), "--no-progress"]) == 2
