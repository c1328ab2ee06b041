"""Value-weighted norms, queries/keys and KV groups, checked against computations written from the
definitions with the model's own weights and plain forward pre-hooks (not from tx_magic's code):
MiniLM (a real trained BERT), GPT-2 and Llama with grouped KV (config-built), to 1e-5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2, tiny_llama

import tx_magic
from tx_magic.capturing import memory
from tx_magic.core.errors import ModelRunError, OptionError, ReplayError

TEXT = "The animal didn't cross the street because it was too tired."


def attention_inputs(model, trace_fn):
    """Each attention module's input x (1, n, D), from plain forward pre-hooks, while `trace_fn` runs."""
    seen = {}
    modules = [m for m in model.modules() if type(m).__name__ in ("BertSelfAttention", "GPT2Attention",
                                                                     "LlamaAttention")]

    def keep(i):
        def hook(_module, args, kwargs):
            seen.setdefault(i, (args[0] if args else kwargs["hidden_states"]).detach().clone())
        return hook

    handles = [m.register_forward_pre_hook(keep(i), with_kwargs=True) for i, m in enumerate(modules)]
    try:
        result = trace_fn()
    finally:
        for h in handles:
            h.remove()
    return result, [seen[i][0].double() for i in range(len(modules))], modules


def bert_parts(model, layer):
    att = model.encoder.layer[layer].attention
    s = att.self
    return (s.query.weight.T, s.query.bias, s.key.weight.T, s.key.bias, s.value.weight.T, s.value.bias,
            att.output.dense.weight.T)


def gpt2_parts(model, layer):
    a = model.transformer.h[layer].attn
    d = a.embed_dim
    w, b = a.c_attn.weight, a.c_attn.bias  # Conv1D: (in, out)
    return w[:, :d], b[:d], w[:, d:2 * d], b[d:2 * d], w[:, 2 * d:], b[2 * d:], a.c_proj.weight


def llama_parts(model, layer):
    a = model.model.layers[layer].self_attn
    return (a.q_proj.weight.T, None, a.k_proj.weight.T, None, a.v_proj.weight.T, None, a.o_proj.weight.T)


def by_hand_norms(x, w_v, b_v, w_o, heads, kv_heads):
    """n[h, j] = ||(x_j W_V^g(h) + b_V^g(h)) W_O^h||, float64, with g(h) = h // (heads / kv_heads)."""
    d = w_o.shape[0] // heads
    v = x @ w_v.double() + (0 if b_v is None else b_v.double())
    out = torch.zeros(heads, x.shape[0], dtype=torch.float64)
    for h in range(heads):
        g = h // (heads // kv_heads)
        out[h] = torch.linalg.vector_norm(v[:, g * d:(g + 1) * d] @ w_o.double()[h * d:(h + 1) * d], dim=-1)
    return out


@pytest.fixture(scope="module", params=["minilm", "gpt2", "llama"])
def case(request, minilm, gpt2_tokenizer):
    if request.param == "minilm":
        model, tok, parts = minilm.model, minilm.tokenizer, bert_parts
        heads = kv = model.config.num_attention_heads
    elif request.param == "gpt2":
        model, tok, parts = tiny_gpt2(), gpt2_tokenizer, gpt2_parts
        heads = kv = model.config.n_head
    else:
        model, tok, parts = tiny_llama(len(gpt2_tokenizer)), gpt2_tokenizer, llama_parts
        heads, kv = model.config.num_attention_heads, model.config.num_key_value_heads
    trace = tx_magic.capture(model, tok, TEXT)
    _, xs, _ = attention_inputs(model, lambda: tx_magic.capture(model, tok, TEXT))
    return request.param, model, trace, xs, parts, heads, kv


def test_value_norms_equal_the_definition_from_the_weights(case):
    _, model, trace, xs, parts, heads, kv = case
    got = trace.value_norms()
    per_key = trace.value_norms(per_key=True)
    att = trace.attention().astype(np.float64)
    assert got.dtype == np.float32 and got.shape == att.shape and per_key.shape == att.shape[:2] + att.shape[3:]
    with torch.no_grad():
        for layer, x in enumerate(xs):
            _, _, _, _, w_v, b_v, w_o = parts(model, layer)
            norms = by_hand_norms(x, w_v, b_v, w_o, heads, kv).numpy()
            np.testing.assert_allclose(per_key[layer], norms, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[layer], att[layer] * norms[:, None, :], rtol=1e-5, atol=1e-6)


def rope(x, theta, positions):
    """Llama's rotary embedding by formula: pairs (i, i + d/2) rotated by position * theta^(-2i/d)."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions[:, None].double() * inv[None]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def test_queries_and_keys_reproduce_the_attention(case):
    name, model, trace, xs, parts, heads, kv = case
    mask = np.where(trace.mask(), 0.0, -np.inf)
    with torch.no_grad():
        for layer, x in enumerate(xs):
            w_q, b_q, w_k, b_k, _, _, _ = parts(model, layer)
            d = w_q.shape[1] // heads
            q = (x @ w_q.double() + (0 if b_q is None else b_q.double())).reshape(-1, heads, d).transpose(0, 1)
            k = (x @ w_k.double() + (0 if b_k is None else b_k.double())).reshape(-1, kv, d).transpose(0, 1)
            unrotated = (q.clone(), k.repeat_interleave(heads // kv, 0).clone())
            if name == "llama":
                positions = torch.arange(x.shape[0])
                q, k = rope(q, model.config.rope_parameters["rope_theta"], positions), \
                    rope(k, model.config.rope_parameters["rope_theta"], positions)
            k = k.repeat_interleave(heads // kv, 0)
            got = trace.queries_keys("self", layer)
            gq, gk = got
            assert gq.dtype == gk.dtype == np.float32 and gq.shape == (heads, x.shape[0], d) and gk.shape == gq.shape
            np.testing.assert_allclose(gq, q.numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(gk, k.numpy(), rtol=1e-5, atol=1e-5)
            assert math.isclose(got.scale, d ** -0.5, rel_tol=1e-6)
            scores = (q @ k.transpose(1, 2)).numpy() * d ** -0.5 + mask
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            np.testing.assert_allclose(probs / probs.sum(-1, keepdims=True), trace.attention()[layer], atol=1e-5)
            if name == "llama":
                uq, uk = got.unrotated
                np.testing.assert_allclose(uq, unrotated[0].numpy(), rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(uk, unrotated[1].numpy(), rtol=1e-5, atol=1e-5)
                assert not np.allclose(got.scores(rotated=False), got.scores())
            else:
                assert got.unrotated is None
                with pytest.raises(OptionError, match="rotary"):
                    got.scores(rotated=False)


def test_kv_groups_say_which_key_value_head_each_query_head_reads(case):
    name, _, trace, _, _, heads, kv = case
    expected = np.arange(heads) // (heads // kv)
    np.testing.assert_array_equal(trace.kv_groups(), expected)
    if name == "llama":
        assert trace.kv_groups().tolist() == [0, 0, 1, 1]
        assert trace.queries_keys(None, 0).groups == 2


def test_kobayashi_most_weight_on_special_tokens_carries_little(minilm):
    """The paper's finding on MiniLM: value weighting moves the share on [CLS]/[SEP] down in every layer."""
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT)
    special = np.array(trace.tokens()[1].special)
    att = trace.attention().astype(np.float64)
    weighted = tx_magic.analysis.weighted_rows(att, trace.value_norms(per_key=True))
    np.testing.assert_allclose(weighted.sum(-1), 1.0, atol=1e-5)
    raw_share = att[..., special].sum(-1).mean((1, 2))
    value_share = weighted[..., special].sum(-1).mean((1, 2))
    assert (value_share < raw_share).all()


def test_streamed_capture_gives_its_kept_queries_and_keys(monkeypatch, gpt2_tokenizer):
    model = tiny_llama(len(gpt2_tokenizer))
    full = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    long = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert long.is_streamed()
    for layer in range(2):
        (fq, fk), (lq, lk) = full.queries_keys(None, layer), long.queries_keys(None, layer)
        np.testing.assert_allclose(lq, fq, atol=1e-5)
        np.testing.assert_allclose(lk, fk, atol=1e-5)
    np.testing.assert_array_equal(long.kv_groups(), [0, 0, 1, 1])
    with pytest.raises(ReplayError, match="max_tokens"):
        long.value_norms()


def test_traces_without_a_model_say_what_to_do():
    trace = tx_magic.show(np.full((1, 2, 3, 3), 1 / 3, np.float32), ["a", "b", "c"]).trace
    for call in (trace.value_norms, lambda: trace.queries_keys(None, 0), trace.kv_groups, trace.flow):
        with pytest.raises(ReplayError, match="capture a transformers model"):
            call()


def test_a_changed_model_is_refused(gpt2_tokenizer):
    model = tiny_gpt2()
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    with torch.no_grad():
        model.transformer.h[1].attn.c_attn.weight.mul_(3)
    with pytest.raises(ReplayError, match="changed since the capture"):
        trace.value_norms()


def test_bad_layer_or_kind_gets_one_message(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "short text")
    with pytest.raises(OptionError, match="layer must be"):
        trace.queries_keys(None, 6)
    with pytest.raises(OptionError, match="kind must be one of"):
        trace.value_norms("cross")


class Explode(Exception):
    pass


@pytest.mark.parametrize("error", [Explode("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_the_model_is_put_back_after_the_replay_however_it_ends(gpt2_tokenizer, error):
    model = tiny_llama(len(gpt2_tokenizer))
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    model.train()
    hooks = lambda: [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]  # noqa: E731
    before, implementation = hooks(), model.config._attn_implementation
    trace.flow(token=-1)  # a flow pass registers the most hooks
    assert hooks() == before and model.training and model.config._attn_implementation == implementation

    def fail(*_args, **_kwargs):
        raise error

    other = tx_magic.capture(model, gpt2_tokenizer, "Another text entirely.")
    handle = model.model.layers[1].mlp.register_forward_hook(fail)
    before = hooks()
    try:
        with pytest.raises(KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else ModelRunError):
            other.value_norms()
        assert hooks() == before and model.training and model.config._attn_implementation == implementation
    finally:
        handle.remove()
    assert model.training and model.config._attn_implementation == implementation


def test_a_bfloat16_model_gets_its_norms_and_flow_within_its_own_precision(gpt2_tokenizer):
    """The projection and residual checks allow the rounding of the model's own dtype, not float32's."""
    model = tiny_llama(len(gpt2_tokenizer))
    full = tx_magic.capture(model, gpt2_tokenizer, TEXT).value_norms(per_key=True)
    half = tx_magic.capture(model.to(torch.bfloat16), gpt2_tokenizer, TEXT)
    np.testing.assert_allclose(half.value_norms(per_key=True), full, rtol=0.05, atol=0.01 * full.max())
    assert len(half.flow(token=-1)) > 0
