"""%explain / %%explain in a real IPython shell: parsing, model variables, messages."""

from __future__ import annotations

import pytest
from conftest import tiny_bart, tiny_gpt2
from IPython.utils.capture import capture_output

import tx_magic
from tx_magic.magics import ExplainMagics, split_options, split_target


def test_line_magic_returns_widget_on_default_model(shell):
    w = shell.run_line_magic("explain", "The animal didn't cross the street because it was too tired.")
    assert isinstance(w, tx_magic.AttentionWidget)
    assert w.trace.model_name == "all-MiniLM-L6-v2"
    assert "didn" in list(w.trace.tokens()[0])
    assert (w.layer, w.head, w.heads) == (0, -1, list(range(12)))


def test_assignment_form_and_options(shell):
    result = shell.run_cell("w = %explain -l 3 --head 5 The cat sat on the mat.")
    assert result.success
    w = shell.user_ns["w"]
    assert (w.layer, w.head) == (3, 5)


def test_second_call_reuses_the_loaded_model(shell):
    a = shell.run_line_magic("explain", "one")
    b = shell.run_line_magic("explain", "two")
    assert a.trace is not b.trace
    from tx_magic.capturing.load import load_model

    assert load_model() is load_model()


def test_model_and_tokenizer_from_notebook_variables(shell, gpt2_tokenizer):
    shell.user_ns.update(my_model=tiny_gpt2(), my_tok=gpt2_tokenizer)
    w = shell.run_line_magic("explain", "-m my_model -t my_tok Hello there")
    assert w.trace.shape() == (2, 4, 2, 2)
    assert w.trace.tokens()[0].raw == ("Hello", "Ġthere")


def test_cell_magic_splits_source_and_target(shell, minilm):
    tok = minilm.tokenizer
    shell.user_ns.update(s2s=tiny_bart(tok.vocab_size, tok.cls_token_id), s2s_tok=tok)
    w = shell.run_cell_magic("explain", "-m s2s -t s2s_tok", "the source\nsentence\n---\nthe target\n")
    assert w.trace.kinds == ("encoder", "decoder", "cross")
    assert "sentence" in list(w.trace.tokens("encoder")[0])
    assert "target" in list(w.trace.tokens("decoder")[0])
    assert w.kind == "encoder"


@pytest.mark.parametrize(("line", "message"), [
    ("", "text is empty"),
    ("   ", "text is empty"),
    ("-m no/such-model-anywhere hello", "not a local folder"),
    ("-l 99 hello", "layer must be in 0..5"),
    ("-m", "expected one argument"),
])
def test_bad_input_gives_one_clear_line_and_no_traceback(shell, line, message):
    with capture_output() as out:
        result = shell.run_cell(f"%explain {line}")
    assert not result.success
    text = out.stdout + out.stderr
    assert message in text
    assert "Traceback" not in text and "File " not in text
    assert len(text.strip().splitlines()) <= 3


def test_encoder_decoder_without_target_says_how(shell, minilm):
    tok = minilm.tokenizer
    shell.user_ns.update(s2s=tiny_bart(tok.vocab_size, tok.cls_token_id), s2s_tok=tok)
    with capture_output() as out:
        shell.run_cell("%explain -m s2s -t s2s_tok only a source")
    assert "encoder-decoder" in out.stderr + out.stdout and "---" in out.stderr + out.stdout


def test_truncation_warning_is_printed(shell):
    with capture_output() as out:
        w = shell.run_line_magic("explain", "--max-tokens 4 one two three four five six")
    assert w.trace.shape()[2] == 4
    assert "only the first 4" in out.stdout


def test_help_lists_the_options(shell):
    doc = ExplainMagics.explain.__doc__
    for option in ("--model", "--tokenizer", "--layer", "--head", "--target", "--max-tokens"):
        assert option in doc


@pytest.mark.parametrize(("line", "argv", "text"), [
    ("The animal didn't cross", [], "The animal didn't cross"),
    ("-m gpt2 -l 5 It's \"quoted\"", ["-m", "gpt2", "-l", "5"], "It's \"quoted\""),
    ("--model 'a folder' --head=3 hi", ["--model", "a folder", "--head=3"], "hi"),
    ("-- -m is text", [], "-m is text"),
    ("-l 2", ["-l", "2"], ""),
])
def test_split_options_keeps_the_text_as_typed(line, argv, text):
    assert split_options(line, ExplainMagics.explain) == (argv, text)


def test_split_target():
    assert split_target("a\nb\n---\nc\n") == ("a\nb", "c")
    assert split_target("just text\n") == ("just text", None)
    assert split_target("one\n\ntwo\n") == ("one", "two")
    assert split_target("a\nb\nc") == ("a\nb\nc", None)


def test_pair_from_option_and_from_two_lines(shell):
    w = shell.run_line_magic("explain", "--pair 'It was tired.' The cat sat.")
    assert w.trace.tokens()[0].segment.count(1) == 5
    w = shell.run_cell_magic("explain", "", "The cat sat.\nIt was tired.\n")
    assert w.trace.tokens()[0].segment.count(1) == 5
    assert w._meta["sequences"]["input"]["segment"] == list(w.trace.tokens()[0].segment)
