"""`%config ExplainMagics.*`: the magic's defaults as traitlets options, through a real IPython shell."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import traitlets
from conftest import tiny_gpt2
from IPython.utils.capture import capture_output
from traitlets.config import Config

import tx_magic
from tx_magic.magics import ExplainMagics, parse_options

OPTIONS = ("model", "tokenizer", "max_tokens", "layer")


@pytest.fixture
def configured(shell):
    """The registered ExplainMagics instance, its options put back as they were afterwards."""
    magics = shell.magics_manager.registry["ExplainMagics"]
    saved = {name: getattr(magics, name) for name in OPTIONS}
    yield magics
    for name, value in saved.items():
        setattr(magics, name, value)
        shell.config.ExplainMagics.pop(name, None)


def test_config_lists_the_options(shell, configured):
    assert configured in shell.configurables
    with capture_output() as out:
        shell.run_line_magic("config", "ExplainMagics")
    for name in OPTIONS:
        assert f"ExplainMagics.{name}" in out.stdout


def test_explain_without_options_uses_the_configured_defaults(shell, configured, gpt2_tokenizer, minilm):
    model = tiny_gpt2()
    shell.user_ns.update(cfg_model=model, cfg_tok=gpt2_tokenizer)
    shell.run_line_magic("config", 'ExplainMagics.model = "cfg_model"')
    shell.run_line_magic("config", 'ExplainMagics.tokenizer = "cfg_tok"')
    shell.run_line_magic("config", "ExplainMagics.max_tokens = 4")
    shell.run_line_magic("config", "ExplainMagics.layer = 1")
    assert (configured.model, configured.tokenizer, configured.max_tokens, configured.layer) == (
        "cfg_model", "cfg_tok", 4, 1)
    text = "The cat sat on the mat because it was tired"
    with capture_output() as out:
        widget = shell.run_line_magic("explain", text)
    expected = tx_magic.capture(model, gpt2_tokenizer, text, max_tokens=4)
    np.testing.assert_array_equal(widget.trace.attention(), expected.attention())
    assert widget.layer == 1 and widget.trace.shape()[-1] == 4
    assert "only the first 4" in out.stdout  # the truncation is said, as with --max-tokens

    overridden = shell.run_line_magic("explain", "-m cfg_model -t cfg_tok -l 0 --max-tokens 6 " + text)
    assert overridden.layer == 0 and overridden.trace.shape()[-1] == 6
    shell.user_ns.update(mini=minilm.model, mini_tok=minilm.tokenizer)
    other = shell.run_line_magic("explain", "-m mini -t mini_tok " + text)
    assert other.trace.shape()[1] == 12  # -m and -t win over the configured model and tokenizer
    alone = shell.run_line_magic("explain", "-m mini " + text)  # the configured tokenizer goes with its model only
    assert alone.trace.tokens()[0].raw[0] == "[CLS]"


def test_configured_defaults_back_to_none_use_the_default_model(shell, configured):
    shell.run_line_magic("config", "ExplainMagics.model = None")
    shell.run_line_magic("config", "ExplainMagics.tokenizer = None")
    shell.run_line_magic("config", "ExplainMagics.max_tokens = None")
    assert shell.run_line_magic("explain", "The cat sat.").trace.model_name == "all-MiniLM-L6-v2"


def test_bad_values_are_refused_by_the_trait(configured):
    with pytest.raises(traitlets.TraitError, match="at least 1"):
        configured.max_tokens = 0
    with pytest.raises(traitlets.TraitError, match="0 or more"):
        configured.layer = -2
    with pytest.raises(traitlets.TraitError):
        configured.layer = "three"


def test_ipython_config_file_values_reach_a_new_instance(shell):
    magics = ExplainMagics(shell=shell, config=Config({"ExplainMagics": {"model": "gpt2", "layer": 2}}))
    try:
        assert (magics.model, magics.layer, magics.max_tokens) == ("gpt2", 2, None)
    finally:
        shell.configurables.remove(magics)


def test_options_keep_their_defaults_when_every_object_has_an_attribute_of_their_name(shell, monkeypatch):
    """`import nnsight` gives every object a `.save` method; argparse then skips --save's default (None)."""
    monkeypatch.setattr(argparse.Namespace, "save", lambda self: None, raising=False)
    parser = shell.magics_manager.registry["ExplainMagics"].explain.parser
    assert parse_options(parser, ["-l", "2"]).save is None
    assert parse_options(parser, ["--save", "x.html"]).save == "x.html"
