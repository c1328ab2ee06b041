"""Models spread over devices by accelerate (device_map): inputs go to the embedding's device,
weights come back to the CPU, and the trace equals the undistributed model's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from conftest import tiny_gpt2

import tx_magic
from tx_magic.capturing.models import input_device


@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model = tiny_gpt2()
    model.save_pretrained(folder)
    return model, folder


def test_layers_offloaded_to_disk_give_the_same_trace(saved_gpt2, gpt2_tokenizer, tmp_path):
    model, folder = saved_gpt2
    device_map = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h.0": "cpu",
                  "transformer.h.1": "disk", "transformer.ln_f": "cpu", "lm_head": "cpu"}
    spread = tf.GPT2LMHeadModel.from_pretrained(folder, device_map=device_map, offload_folder=str(tmp_path))
    assert spread.hf_device_map["transformer.h.1"] == "disk"
    assert any(p.device.type == "meta" for p in spread.transformer.h[1].parameters())  # really offloaded
    text = "The capital of France is Paris."
    want = tx_magic.capture(model, gpt2_tokenizer, text)
    got = tx_magic.capture(spread, gpt2_tokenizer, text)
    assert got.shape() == want.shape()
    np.testing.assert_allclose(got.attention(), want.attention(), atol=1e-6)
    assert got.attention().dtype == np.float32
    assert input_device(spread) == torch.device("cpu")


def test_device_map_auto_with_too_little_memory_offloads_and_still_matches(saved_gpt2, gpt2_tokenizer, tmp_path):
    """max_memory below the model's size: accelerate puts it on "disk" and every parameter on the meta
    device, so the inputs must not follow the first parameter (meta) but the embedding's place (cpu)."""
    model, folder = saved_gpt2
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    spread = tf.GPT2LMHeadModel.from_pretrained(folder, device_map="auto", max_memory={"cpu": int(size * 0.8)},
                                                offload_folder=str(tmp_path))
    assert "disk" in set(spread.hf_device_map.values())  # it did not fit: offloaded
    assert next(spread.parameters()).device.type == "meta"
    want = tx_magic.capture(model, gpt2_tokenizer, "A model in pieces still attends the same way.")
    got = tx_magic.capture(spread, gpt2_tokenizer, "A model in pieces still attends the same way.")
    np.testing.assert_allclose(got.attention(), want.attention(), atol=1e-6)


def test_input_device_follows_the_embedding_in_the_device_map():
    model = tiny_gpt2()
    model.hf_device_map = {"transformer.wte": 0, "transformer.h": "cpu"}
    assert input_device(model) == torch.device("cuda", 0)
    model.hf_device_map = {"": "disk"}
    assert input_device(model) == torch.device("cpu")
