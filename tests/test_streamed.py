"""Streamed capture of long inputs: every reduction equals what the full eager attention gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2, tiny_llama

import tx_magic
from tx_magic.analysis import head_stats
from tx_magic.capturing import streamed

TEXT = "the cat sat on the mat because it was tired and the dog ran " * 3


def record(model, ids, tile=4, top_k=5):
    with streamed.recording(model, len(ids), tile=tile, top_k=top_k, token_ids=ids) as rec, torch.inference_mode():
        model(input_ids=torch.tensor([ids]))
    return rec.result()


@pytest.fixture(params=["gpt2", "llama-gqa", "minilm"])
def case(request, minilm, monkeypatch):
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 8)  # several chunks, partial last chunk
    tok = minilm.tokenizer
    model = {"gpt2": lambda: tiny_gpt2(vocab_size=tok.vocab_size, positions=128),
             "llama-gqa": lambda: tiny_llama(tok.vocab_size), "minilm": lambda: minilm.model}[request.param]()
    full = tx_magic.capture(model, tok, TEXT)
    ids = list(full.tokens()[0].ids)
    before = model.config._attn_implementation
    reduced = record(model, ids)
    assert model.config._attn_implementation == before and not model.training
    return full.attention(), reduced, ids


def test_exact_blocks_recomputed_from_queries_keys_and_lse(case):
    att, red, _ = case
    assert red.shape == att.shape
    for layer in range(att.shape[0]):
        np.testing.assert_allclose(red.layer(layer), att[layer], atol=3e-6)
    np.testing.assert_allclose(red.block(1, 5, 9, 2, 7), att[1, :, 5:9, 2:7], atol=3e-6)
    with pytest.raises(IndexError):
        red.block(0, 0, att.shape[2] + 1, 0, 1)


def test_overview_tiles_are_max_pooled(case):
    att, red, _ = case
    L, H, n, _ = att.shape
    t = red.tile
    size = -(-n // t) * t
    padded = np.zeros((L, H, size, size), np.float32)
    padded[:, :, :n, :n] = att
    pooled = padded.reshape(L, H, size // t, t, size // t, t).max((3, 5))
    np.testing.assert_allclose(red.tiles, pooled, atol=3e-6)


def test_top_keys_per_row(case):
    att, red, _ = case
    order = np.argsort(-att, axis=-1, kind="stable")[..., :5]
    np.testing.assert_allclose(red.top_values, np.take_along_axis(att, order, -1), atol=3e-6)
    picked = np.take_along_axis(att, red.top_index.astype(np.int64), -1)
    np.testing.assert_allclose(picked, red.top_values, atol=3e-6)


def test_row_statistics_average_to_head_stats(case):
    att, red, _ = case
    expected = head_stats(att)
    rows = red.row_stats
    for name in ("entropy", "max_weight", "distance", "self"):
        np.testing.assert_allclose(rows[name].mean(-1), expected[name], atol=1e-5)
    for name in ("first", "previous"):  # over rows 1.. as head_stats defines them
        np.testing.assert_allclose(rows[name][..., 1:].mean(-1), expected[name], atol=1e-5)


def test_tile_size_keeps_the_overview_bounded():
    assert streamed.tile_for(100, 512) == 1
    assert streamed.tile_for(8192, 512) == 16
    assert streamed.tile_for(8192, 256) == 32
    assert -(-8192 // streamed.tile_for(8192, 512)) <= 512


def test_unsupported_attention_is_refused():
    with pytest.raises(NotImplementedError, match="softcap"):
        streamed._recording_attention(None, None, None, None, None, softcap=30.0)


def test_capture_streams_long_inputs_and_keeps_exact_values_reachable(minilm, monkeypatch):
    from tx_magic.capturing import memory

    monkeypatch.setattr(memory, "FULL_LIMIT", 1)  # everything is "long"
    tok = minilm.tokenizer
    model = tiny_llama(tok.vocab_size)
    full = tx_magic.capture(model, tok, TEXT, max_tokens=40)
    assert full.is_streamed()
    monkeypatch.setattr(memory, "FULL_LIMIT", 1 << 40)
    eager = tx_magic.capture(model, tok, TEXT, max_tokens=40)
    assert not eager.is_streamed()
    np.testing.assert_allclose(full.attention(), eager.attention(), atol=3e-6)
    np.testing.assert_allclose(full.layer("self", 1), eager.layer("self", 1), atol=3e-6)
    np.testing.assert_allclose(full.block("self", 0, 3, 9, 0, 5), eager.attention()[0, :, 3:9, :5], atol=3e-6)
    assert any("kept reduced" in w for w in full.warnings)
    assert np.array_equal(full.mask(), eager.mask())
    assert "streamed" in repr(full)


def test_materialising_a_huge_streamed_trace_says_what_to_do(minilm, monkeypatch):
    from tx_magic.capturing import memory
    from tx_magic.core import attention as trace_module

    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    monkeypatch.setattr(trace_module, "MATERIALIZE_LIMIT", 1)
    tok = minilm.tokenizer
    t = tx_magic.capture(tiny_llama(tok.vocab_size), tok, TEXT)
    with pytest.raises(memory.MemoryBudgetError, match=r"trace\.block"):
        t.attention()
    assert t.layer("self", 0).shape == (4, t.shape()[2], t.shape()[3])


def test_stats_of_a_streamed_trace_equal_those_of_the_full_one(minilm, monkeypatch):
    from tx_magic.capturing import memory

    tok = minilm.tokenizer
    model = tiny_llama(tok.vocab_size)
    full = tx_magic.capture(model, tok, TEXT)
    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    streamed_trace = tx_magic.capture(model, tok, TEXT)
    assert streamed_trace.is_streamed()
    a, b = full.stats(), streamed_trace.stats()
    a = a.to_dict("records") if hasattr(a, "to_dict") else a
    b = b.to_dict("records") if hasattr(b, "to_dict") else b
    for x, y in zip(a, b, strict=True):
        assert x["type"] == y["type"]
        for name in ("entropy", "max_weight", "dispersion", "distance", "first", "previous", "self"):
            assert x[name] == pytest.approx(y[name], abs=1e-5)
