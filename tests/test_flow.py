"""The information-flow graph (Ferrando & Voita 2024) against a by-hand computation from plain forward
hooks and the model's own weights: a pre-norm GPT-2 and Llama with grouped KV (config-built) and the
post-norm MiniLM (real weights). Every edge weight to 1e-5, and the pruning's routes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2, tiny_llama
from test_values import bert_parts, gpt2_parts, llama_parts

import tx_magic
from tx_magic.core.errors import OptionError, ReplayError

TEXT = "The cat sat on the mat because it was warm."


def record_layers(model, run, layers, attention_of, projection_of, mlp_of):
    """Per layer, from plain hooks: layer input x, attention input u, projection output a, MLP output, layer output,
    and for post-norm layers the first norm's input and output."""
    got = [{} for _ in layers]
    handles = []

    def put(i, name, fn):
        def hook(*args):
            got[i].setdefault(name, fn(*args).detach().double()[0])
        return hook

    for i, layer in enumerate(layers):
        first = lambda _m, a, kw: a[0] if a else kw["hidden_states"]  # noqa: E731
        handles.append(layer.register_forward_pre_hook(put(i, "x", first), with_kwargs=True))
        handles.append(attention_of(layer).register_forward_pre_hook(
            put(i, "u", lambda _m, a, kw: a[0] if a else kw["hidden_states"]), with_kwargs=True))
        handles.append(projection_of(layer).register_forward_hook(put(i, "a", lambda _m, _a, out: out)))
        handles.append(mlp_of(layer).register_forward_hook(put(i, "mlp", lambda _m, _a, out: out)))
        handles.append(layer.register_forward_hook(put(i, "out", lambda _m, _a, out: out[0] if isinstance(out, tuple)
                                                       else out)))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return got


def shares(parts, whole):
    """Proximity max(0, |y|_1 - |y - z|_1), normalised over the parts (float64 numpy)."""
    close = np.maximum(0.0, np.abs(whole).sum() - np.abs(whole[None] - parts).sum(-1))
    return close / close.sum() if close.sum() > 0 else close


def by_hand(model, trace, got, parts_of, heads, kv, post_norm_of=None):
    """{(layer, type, head, source, target): weight} for every node, no pruning."""
    att = trace.attention().astype(np.float64)
    edges = {}
    with torch.no_grad():
        for layer, rec in enumerate(got):
            _, _, _, _, w_v, b_v, w_o = parts_of(model, layer)
            w_v, w_o = w_v.double(), w_o.double()
            d = w_o.shape[0] // heads
            v = (rec["u"] @ w_v + (0 if b_v is None else b_v.double())).numpy()
            f = np.stack([v[:, (h // (heads // kv)) * d:(h // (heads // kv) + 1) * d] @ w_o.numpy()[h * d:(h + 1) * d]
                          for h in range(heads)])  # (H, K, D)
            x, a = rec["x"].numpy(), rec["a"].numpy()
            whole = x + a
            if post_norm_of is None:
                mid, mlp = whole, rec["mlp"].numpy()
            else:
                norm = post_norm_of(model, layer)
                mid = norm(torch.from_numpy(whole).to(norm.weight.dtype)).double().numpy()
                mlp = rec["mlp"].numpy()
            post = mid + mlp
            if post_norm_of is None:
                np.testing.assert_allclose(post, rec["out"].numpy(), atol=1e-5)
            for i in range(att.shape[2]):
                z = att[layer][:, i, :, None] * f                      # (H, K, D)
                s = shares(np.concatenate([z.reshape(-1, z.shape[-1]), x[i][None]]), whole[i])
                by_head = s[:-1].reshape(heads, -1)
                edges[layer, "residual", -1, i, i] = s[-1]
                for j in range(att.shape[3]):
                    edges[layer, "attention", int(by_head[:, j].argmax()), j, i] = by_head[:, j].sum()
                    for h in range(heads):
                        edges[layer, "head", h, j, i] = by_head[h, j]
                m = shares(np.stack([mlp[i], mid[i]]), post[i])
                edges[layer, "mlp", -1, i, i], edges[layer, "mlp_residual", -1, i, i] = m
    return edges


def gpt2_case(tok):
    model = tiny_gpt2()
    return model, tok, model.transformer.h, lambda b: b.attn, lambda b: b.attn.c_proj, lambda b: b.mlp, \
        gpt2_parts, model.config.n_head, model.config.n_head, None


def llama_case(tok):
    model = tiny_llama(len(tok))
    c = model.config
    return model, tok, model.model.layers, lambda b: b.self_attn, lambda b: b.self_attn.o_proj, lambda b: b.mlp, \
        llama_parts, c.num_attention_heads, c.num_key_value_heads, None


def minilm_case(minilm):
    model = minilm.model
    c = model.config
    return model, minilm.tokenizer, model.encoder.layer, lambda b: b.attention.self, \
        lambda b: b.attention.output.dense, lambda b: b.output.dense, bert_parts, c.num_attention_heads, \
        c.num_attention_heads, lambda m, layer: m.encoder.layer[layer].attention.output.LayerNorm


@pytest.fixture(scope="module", params=["gpt2", "llama", "minilm"])
def case(request, gpt2_tokenizer, minilm):
    model, tok, layers, attention_of, projection_of, mlp_of, parts_of, heads, kv, post = {
        "gpt2": lambda: gpt2_case(gpt2_tokenizer), "llama": lambda: llama_case(gpt2_tokenizer),
        "minilm": lambda: minilm_case(minilm)}[request.param]()
    trace = tx_magic.capture(model, tok, TEXT)
    got = record_layers(model, lambda: tx_magic.capture(model, tok, TEXT), layers, attention_of, projection_of,
                        mlp_of)
    return trace, by_hand(model, trace, got, parts_of, heads, kv, post)


def as_dict(frame):
    return {(r.layer, r.type, r.head, r.source, r.target): r.weight for r in frame.itertuples()}


def test_every_edge_weight_equals_the_by_hand_share(case):
    trace, expected = case
    got = as_dict(trace.flow(threshold=0.0))
    assert set(got) == set(expected)
    for key, weight in expected.items():
        assert abs(got[key] - weight) <= 1e-5, (key, got[key], weight)
    n = trace.shape()[2]
    for layer in range(trace.shape()[0]):  # every node's parts share all of it
        for i in range(n):
            attention = sum(w for (at, t, _, _, tgt), w in got.items() if at == layer and t == "attention" and tgt == i)
            assert abs(attention + got[layer, "residual", -1, i, i] - 1) < 1e-5
            assert abs(got[layer, "mlp", -1, i, i] + got[layer, "mlp_residual", -1, i, i] - 1) < 1e-5


def routes(expected, layers, token, threshold):
    """The paper's pruning by hand: from `token`'s last output, down through the edges at or above the threshold."""
    kept, reached = set(), {token}
    for layer in range(layers - 1, -1, -1):
        mids = set()
        for t in reached:
            for kind in ("mlp", "mlp_residual"):
                if expected[layer, kind, -1, t, t] >= threshold:
                    kept.add((layer, kind, -1, t, t))
                    mids.add(t)
        below = set()
        for key, w in expected.items():
            if key[0] == layer and key[1] in ("attention", "residual", "head") and key[4] in mids and w >= threshold:
                kept.add(key)
                below.add(key[3])
        reached = below
    return kept


@pytest.mark.parametrize("token", [-1, 3])
def test_routes_into_a_token_keep_what_the_paper_keeps(case, token):
    trace, expected = case
    n, layers = trace.shape()[2], trace.shape()[0]
    frame = trace.flow(token=token, threshold=0.04)
    assert set(as_dict(frame)) == routes(expected, layers, token % n, 0.04)
    assert (frame.weight >= 0.04).all() and set(frame.type) <= set(tx_magic.analysis.EDGE_TYPES)
    top = frame[frame.layer == layers - 1]
    assert set(top.target) == {token % n}


def test_bad_threshold_or_token_gets_one_message(case):
    trace, _ = case
    with pytest.raises(OptionError, match="threshold"):
        trace.flow(threshold=1.5)
    with pytest.raises(OptionError, match="token must be"):
        trace.flow(token=999)


def test_encoder_decoder_layers_with_cross_attention_say_why_not(minilm):
    from conftest import tiny_bart

    model = tiny_bart(vocab_size=minilm.tokenizer.vocab_size, start_id=101)
    trace = tx_magic.capture(model, minilm.tokenizer, "a short source", target="a target")
    assert trace.flow("encoder", token=0).shape[0] > 0  # post-norm encoder layers: followed
    with pytest.raises(ReplayError, match="residual stream"):
        trace.flow("decoder", token=0)
