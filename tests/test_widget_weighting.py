"""The widget's `weighting` trait (raw | value) and the ways to start with it: Python, explain(), %explain."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets
from conftest import tiny_llama

import tx_magic
from tx_magic import wire
from tx_magic.capturing import memory
from tx_magic.core.errors import OptionError

TEXT = "The cat sat on the mat."


def test_value_weighting_is_a_synced_trait_that_the_renderer_can_serve(minilm):
    w = tx_magic.explain(minilm.model, minilm.tokenizer, TEXT, weighting="value")
    assert w.weighting == "value" and w.trait_metadata("weighting", "sync")
    assert w._meta["analyses"]["self"] == ["value", "qk", "flow"]
    reply, buffers = wire.reply_to(w.trace, {"type": wire.REQUEST_VALUE_NORMS, "id": "1", "payload": {"kind": "self"}})
    assert reply["type"] == wire.REPLY and len(buffers) == 3
    w.weighting = "raw"
    with pytest.raises(traitlets.TraitError):
        w.weighting = "weights"


def test_value_weighting_is_refused_where_it_cannot_be_had(monkeypatch, gpt2_tokenizer):
    arrays = tx_magic.show(np.full((1, 1, 2, 2), 0.5, np.float32), ["a", "b"])
    with pytest.raises(traitlets.TraitError, match="capture a transformers model"):
        arrays.weighting = "value"
    with pytest.raises(OptionError, match="capture a transformers model"):
        tx_magic.show(arrays.trace, weighting="value")
    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    long = tx_magic.explain(tiny_llama(len(gpt2_tokenizer)), gpt2_tokenizer, TEXT)
    with pytest.raises(traitlets.TraitError, match="max_tokens"):
        long.weighting = "value"


def test_value_weighting_carries_across_the_kinds_of_an_encoder_decoder(minilm):
    from conftest import tiny_bart

    trace = tx_magic.capture(tiny_bart(minilm.tokenizer.vocab_size, 101), minilm.tokenizer, "a b c", target="d e")
    w = tx_magic.show(trace, kind="encoder", weighting="value")
    w.kind = "cross"  # cross-attention has value norms too
    assert w.weighting == "value"


def test_the_magic_takes_weighting(shell, minilm):
    w = shell.run_line_magic("explain", f"--weighting value {TEXT}")
    assert w.weighting == "value"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError):
        shell.run_line_magic("explain", f"--weighting heavy {TEXT}")
