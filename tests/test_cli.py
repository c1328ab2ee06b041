"""`tx-magic report`: writes reports; bad input is one line and exit status 2; a failing line of a
batch is named, the others are still written, exit status 1."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from test_report import Page

from tx_magic.cli import main
from tx_magic.report.html import HEADER_ID

TEXT = "What is the capital of France?"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {err!r}"
    assert "Traceback" not in err
    return lines[0]


def test_one_text_one_report(capsys, tmp_path, minilm):
    out = tmp_path / "report.html"
    code, stdout, err = run(capsys, "report", "--text", TEXT, "--output", str(out))
    assert code == 0, err
    assert f"wrote {out}" in stdout
    page = Page(out.read_text(encoding="utf-8"))
    assert page.json(HEADER_ID)["texts"][0]["text"] == TEXT
    assert page.json(HEADER_ID)["title"] == "tx_magic: all-MiniLM-L6-v2"
    assert "France" in page.json("txm-trace-0")["meta"]["sequences"]["input"]["text"]


def test_output_folder_gets_report_html(capsys, tmp_path, minilm):
    code, _, err = run(capsys, "report", "--text", TEXT, "-o", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "report.html").exists()


def test_batch_one_report_per_text_and_a_failing_line(capsys, tmp_path, minilm):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("\n".join([
        json.dumps({"text": TEXT}),
        json.dumps({"text": ""}),            # fails when run
        "{this is not json",                 # fails when read
        json.dumps({"text": "The cat sat.", "pair": "It was tired."}),
    ]) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "report", "--texts-file", str(texts), "--output", str(tmp_path / "out.html"))
    assert code == 1
    assert sorted(p.name for p in tmp_path.glob("out-*.html")) == ["out-001.html", "out-004.html"]
    assert "2 of 4 texts failed (the others were written)" in err
    assert "line 2: Nothing to explain" in err and "line 3: not valid JSON" in err
    assert "Traceback" not in err
    pair = Page((tmp_path / "out-004.html").read_text(encoding="utf-8")).json("txm-trace-0")
    assert set(pair["meta"]["sequences"]["input"]["segment"]) == {0, 1}


def test_batch_into_a_new_folder(capsys, tmp_path, minilm):
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{TEXT}\nThe cat sat.\n", encoding="utf-8")
    code, _, err = run(capsys, "report", "--texts-file", str(texts), "-o", str(tmp_path / "reports"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["report-001.html", "report-002.html"]


def test_batch_one_file_with_a_text_selector(capsys, tmp_path, minilm):
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{TEXT}\n\nThe cat sat on the mat.\n", encoding="utf-8")
    out = tmp_path / "all.html"
    code, stdout, err = run(capsys, "report", "--texts-file", str(texts), "--one-file", "-o", str(out),
                            "--title", "Two texts")
    assert code == 0, err
    header = Page(out.read_text(encoding="utf-8")).json(HEADER_ID)
    assert header["title"] == "Two texts"
    assert [t["label"] for t in header["texts"]] == [f"line 1: {TEXT}", "line 3: The cat sat on the mat."]
    assert "2 texts" in stdout


def test_max_bytes_leaves_layers_out_and_says_so(capsys, tmp_path, minilm):
    out = tmp_path / "small.html"
    code, stdout, err = run(capsys, "report", "--text", TEXT * 30, "-o", str(out), "--max-bytes", "0.6MB")
    assert code == 0, err
    assert "some layers left out" in stdout
    assert len(out.read_bytes()) <= 600_000
    assert Page(out.read_text(encoding="utf-8")).json(HEADER_ID)["texts"][0]["omitted"]


@pytest.mark.parametrize(("output", "message"), [
    ("{tmp}/no/such/folder/r.html", "does not exist"),
    ("{tmp}/a-file/r.html", "is not a folder"),
])
def test_unwritable_output(capsys, tmp_path, output, message):
    (tmp_path / "a-file").write_text("x")
    code, _, err = run(capsys, "report", "--text", TEXT, "-o", output.format(tmp=tmp_path))
    assert code == 2
    assert message in one_line_error(err)


def test_read_only_folder(capsys, tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits, but not into sysfs
        folder = pathlib.Path("/sys")
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    code, _, err = run(capsys, "report", "--text", TEXT, "-o", str(folder / "tx-magic-r.html"))
    assert code == 2 and "cannot write" in one_line_error(err)


def test_unknown_model(capsys, tmp_path):
    code, _, err = run(capsys, "report", "-m", "no-such-org/no-such-model", "--text", TEXT,
                       "-o", str(tmp_path / "r.html"))
    assert code == 2
    assert "Could not load model 'no-such-org/no-such-model'" in one_line_error(err)
    assert not (tmp_path / "r.html").exists()


def test_missing_gguf_file(capsys, tmp_path):
    code, _, err = run(capsys, "report", "-m", str(tmp_path / "model.Q4_K_M.gguf"), "--text", TEXT,
                       "-o", str(tmp_path / "r.html"))
    assert code == 2 and "model.Q4_K_M.gguf" in one_line_error(err)


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_texts_file(capsys, tmp_path, content):
    texts = tmp_path / "empty.txt"
    texts.write_text(content)
    code, _, err = run(capsys, "report", "--texts-file", str(texts), "-o", str(tmp_path))
    assert code == 2 and "is empty" in one_line_error(err)


def test_missing_texts_file_and_empty_text(capsys, tmp_path):
    code, _, err = run(capsys, "report", "--texts-file", str(tmp_path / "nope.txt"), "-o", str(tmp_path))
    assert code == 2 and "cannot read the texts file" in one_line_error(err)
    code, _, err = run(capsys, "report", "--text", "  ", "-o", str(tmp_path / "r.html"))
    assert code == 2 and "text is empty" in one_line_error(err)


def test_option_errors_exit_2(capsys, tmp_path):
    for argv in (["report", "-o", "x.html"],                                      # no text
                 ["report", "--text", "a", "--texts-file", "f", "-o", "x.html"],  # both
                 ["report", "--text", "a", "-o", "x.html", "--max-bytes", "lots"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    capsys.readouterr()
    code, _, err = run(capsys, "report", "--text", "a", "--one-file", "-o", str(tmp_path / "x.html"))
    assert code == 2 and "--one-file goes with --texts-file" in err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "tx_magic.cli", "report", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--texts-file" in result.stdout and "--max-bytes" in result.stdout
