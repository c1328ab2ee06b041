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


def llama_positions(vocab_size: int, positions: int = 1024):
    """`tiny_llama` (grouped KV: 4 query heads on 2 key/value heads) taking `positions` tokens."""
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                         intermediate_size=64, vocab_size=vocab_size, max_position_embeddings=positions)
    return tf.LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=[517, 512])
def longer(request, minilm, monkeypatch):
    """A few hundred tokens reduced in chunks of 24 rows (a multiple of the 8-token tile; the last chunk and,
    at 517, the last tile partial; at 512 the thumbnail ranges start on tiles, at 517 they do not)."""
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 24)
    tok = minilm.tokenizer
    model = llama_positions(tok.vocab_size)
    ids = (tok(TEXT)["input_ids"] * 40)[:request.param]
    eager = tx_magic.capture(model, tok, "", ids=ids)
    assert not eager.is_streamed()
    return eager.attention(), record(model, ids, tile=8, top_k=8), ids


def test_longer_inputs_in_several_chunks_equal_the_eager_capture(longer):
    att, red, _ = longer
    L, H, n, _ = att.shape
    assert red.shape == att.shape and red.causal
    assert streamed.chunk_rows(n, H, 8) == 24 and n > 3 * 24
    for layer in range(L):
        np.testing.assert_allclose(red.layer(layer), att[layer], atol=1e-5)
    np.testing.assert_allclose(red.block(1, 100, 190, 30, 170), att[1, :, 100:190, 30:170], atol=1e-5)
    size = -(-n // 8) * 8                                     # overview: max over 8 x 8 tiles, zero-padded
    padded = np.zeros((L, H, size, size), np.float32)
    padded[..., :n, :n] = att
    np.testing.assert_allclose(red.tiles, padded.reshape(L, H, size // 8, 8, size // 8, 8).max((3, 5)), atol=1e-5)
    thumbs = np.array([[[[part.max() for part in np.array_split(band, 32, axis=1)]
                         for band in np.array_split(att[i, h], 32, axis=0)] for h in range(H)] for i in range(L)])
    np.testing.assert_allclose(red.thumbnails, thumbs, atol=1e-5)
    strongest = -np.sort(-att, axis=-1)[..., :8]
    np.testing.assert_allclose(red.top_values, strongest, atol=1e-5)
    assert len(set(red.top_index[1, 2, 300].tolist())) == 8
    np.testing.assert_allclose(np.take_along_axis(att, red.top_index.astype(np.int64), -1), red.top_values, atol=1e-5)


def test_longer_inputs_row_statistics_from_their_definitions(longer):
    att, red, ids = longer
    n = att.shape[-1]
    rows = np.arange(n)
    rs = red.row_stats
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(att > 0, att * np.log(att), 0.0).sum(-1)
    np.testing.assert_allclose(rs["entropy"], entropy, atol=1e-5)
    np.testing.assert_allclose(rs["max_weight"], att.max(-1), atol=1e-5)
    np.testing.assert_allclose(rs["distance"], (att * np.abs(rows[None, :] - rows[:, None])).sum(-1), atol=1e-3,
                               rtol=1e-5)
    np.testing.assert_allclose(rs["first"], att[..., 0], atol=1e-5)
    np.testing.assert_allclose(rs["self"], att[..., rows, rows], atol=1e-5)
    np.testing.assert_allclose(rs["previous"][..., 1:], att[..., rows[1:], rows[:-1]], atol=1e-5)
    assert np.all(rs["previous"][..., 0] == 0)
    band = sum(np.where((rows + o >= 0) & (rows + o < n), att[..., rows, np.clip(rows + o, 0, n - 1)], 0.0)
               for o in range(-2, 3))
    np.testing.assert_allclose(rs["local"], band, atol=1e-5)
    np.testing.assert_allclose(rs["norm_entropy"][..., 1:], entropy[..., 1:] / np.log(rows[1:] + 1), atol=1e-5)
    targets = streamed.induction_target_rows(ids, n)
    has = targets >= 0
    assert has.sum() > 100
    np.testing.assert_allclose(rs["induction"][..., has], att[..., rows[has], targets[has]], atol=1e-5)
    assert np.isnan(rs["induction"][..., ~has]).all()


def test_chunk_rows_bound_the_work_and_stay_on_tiles():
    assert streamed.chunk_rows(32768, 16, 64) == 128          # 16 x 128 x 32768 x 4 B = 256 MB a buffer
    assert streamed.CHUNK_BYTES >= 16 * 128 * 32768 * 4
    assert streamed.chunk_rows(8192, 16, 16) == 256            # at most CHUNK_ROWS
    assert streamed.chunk_rows(1 << 20, 16, 256) == 256       # never under a tile
    assert streamed.chunk_rows(100_000, 9, 64) % 64 == 0


def test_the_recorded_pass_gives_the_models_own_output(minilm, monkeypatch):
    """The recorder computes each layer's output from the weights it reduces (sdpa is not run): the logits
    equal those of the model's own sdpa pass."""
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 24)
    tok = minilm.tokenizer
    model = llama_positions(tok.vocab_size)
    ids = torch.tensor([(tok(TEXT)["input_ids"] * 20)[:300]])
    before = model.config._attn_implementation
    with torch.inference_mode():
        want = model(input_ids=ids, use_cache=False).logits
        with streamed.recording(model, 300, tile=8, top_k=8, token_ids=ids[0].tolist()) as rec:
            got = model(input_ids=ids, use_cache=False).logits
    assert len(rec.layers) == 2 and model.config._attn_implementation == before
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize("spread", [0.3, 8.0])
def test_recorder_on_given_queries_and_keys_matches_softmax(spread, monkeypatch):
    """Scores small and large (row maxima far above 16: entropy is then summed on shifted scores): weights,
    entropy, log-sum-exp and output equal plain torch's softmax(q k^T / sqrt(d) + causal mask) and its
    product with the values."""
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 16)
    torch.manual_seed(1)
    n, d = 150, 16
    q, k, v = torch.randn(1, 4, n, d) * spread, torch.randn(1, 2, n, d) * spread, torch.randn(1, 2, n, d)

    class Module:
        is_causal = True

    rec = streamed._Recorder(n=n, tile=4, top_k=8, token_ids=list(range(n)))
    out = rec.record(Module(), q, k, v, None, None, True)
    red = rec.result()
    kk, vv = k[0].repeat_interleave(2, 0), v[0].repeat_interleave(2, 0)
    scores = (q[0] @ kk.transpose(-1, -2) / d ** 0.5).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1),
                                                                   float("-inf"))
    att = torch.softmax(scores.double(), -1)
    assert float(scores.max()) > (16 if spread > 1 else -1)
    np.testing.assert_allclose(red.layer(0), att.numpy(), atol=1e-5)
    np.testing.assert_allclose(red.lse[0], torch.logsumexp(scores.double(), -1).numpy(), rtol=1e-6, atol=1e-5)
    entropy = -(att * torch.where(att > 0, att.log(), torch.zeros_like(att))).sum(-1)
    np.testing.assert_allclose(red.row_stats["entropy"][0], entropy.numpy(), atol=1e-5)
    np.testing.assert_allclose(out[0].transpose(0, 1).numpy(), (att.float() @ vv).numpy(), atol=1e-5)
    assert out.shape == (1, n, 4, d)


@pytest.mark.parametrize("width", [33, 64, 97, 130, 517])
def test_top_keys_through_runs_of_runs_equal_a_full_sort(width):
    """`_top_keys` searches groups of runs, then runs, then keys: the values equal torch.topk of the whole
    row, ties and partial last runs and groups included, and each index points at its value."""
    torch.manual_seed(width)
    x = torch.rand(3, 7, width)
    x[0] = x[0].round(decimals=1)                           # many ties
    x[1, :, -1] = 2.0                                       # the strongest key alone in a partial last run
    t, k = 4, 8
    blocks = streamed._block_max(x, t)
    values, index = streamed._top_keys(x, blocks, k, t)
    want = torch.topk(x, k, dim=-1).values
    torch.testing.assert_close(values, want)
    torch.testing.assert_close(x.gather(-1, index), values)
    assert all(len(set(row.tolist())) == k for row in index.reshape(-1, k))
