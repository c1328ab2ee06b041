"""Bad input through the Python API: short messages that say what to do."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_gpt2

import tx_magic


def test_empty_text(minilm):
    for text in ("", "  \n\t"):
        with pytest.raises(tx_magic.EmptyTextError, match="empty"):
            tx_magic.capture(minilm.model, minilm.tokenizer, text)


def test_unknown_model_names_what_was_tried():
    with pytest.raises(tx_magic.ModelLoadError) as err:
        tx_magic.explain("no-such-org/no-such-model", text="hi")
    message = str(err.value)
    assert "no-such-org/no-such-model" in message and "offline" in message
    assert len(message) < 300


def test_folder_without_config(tmp_path):
    with pytest.raises(tx_magic.ModelLoadError, match=r"config\.json"):
        tx_magic.explain(str(tmp_path), text="hi")


def test_model_object_without_tokenizer(gpt2_tokenizer):
    with pytest.raises(tx_magic.ModelLoadError, match="tokenizer"):
        tx_magic.explain(tiny_gpt2(), None, "hi")


class _NoAttention(torch.nn.Module):
    """A model whose outputs carry no attention weights."""

    def forward(self, input_ids, **kwargs):
        return {"last_hidden_state": torch.zeros(1, input_ids.shape[1], 4), "attentions": None}


def test_model_without_attention_names_its_class(minilm):
    with pytest.raises(tx_magic.NoAttentionError, match="_NoAttention"):
        tx_magic.capture(_NoAttention(), minilm.tokenizer, "hello")


def test_odd_tokens_stay_data(minilm):
    text = "<script>alert(1)</script> </script> <img src=x onerror=alert(1)> 東京 😀 مرحبا e\u0301"
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, text)
    joined = "".join(trace.tokens()[0])
    for piece in ("script", "東", "😀", "مرحبا", "onerror"):
        assert piece in joined
