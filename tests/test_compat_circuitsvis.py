"""`tx_magic.compat.attention_heads` / `attention_patterns` / `attention_pattern`: CircuitsVis's signatures and
the call of TransformerLens's Main Demo (a real TransformerBridge cache), shown in tx_magic's widget with the
patterns exactly as the cache holds them."""

from __future__ import annotations

import inspect
import warnings

import circuitsvis.attention
import numpy as np
import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

import tx_magic
from tx_magic.compat import CircuitsView, CompatError, attention_heads, attention_pattern, attention_patterns

GPT2_TEXT = ("Natural language processing tasks, such as question answering, machine translation, reading "
             "comprehension, and summarization, are typically approached with supervised learning.")


@pytest.fixture(scope="module")
def main_demo(tiny_gpt2_folder):
    """TransformerLens Main Demo's cells, on a config-built GPT-2."""
    model = TransformerBridge.boot_transformers(str(tiny_gpt2_folder), device="cpu")
    gpt2_tokens = model.to_tokens(GPT2_TEXT)
    _, gpt2_cache = model.run_with_cache(gpt2_tokens, remove_batch_dim=True)
    attention_pattern = gpt2_cache["pattern", 0, "attn"]
    gpt2_str_tokens = model.to_str_tokens(GPT2_TEXT)
    return attention_pattern, gpt2_str_tokens, gpt2_cache


@pytest.mark.parametrize("name", ["attention_heads", "attention_patterns", "attention_pattern"])
def test_signatures_are_circuitsvis_s(name):
    theirs = inspect.signature(getattr(circuitsvis.attention, name)).parameters
    ours = inspect.signature(globals()[name]).parameters
    assert [(p.name, p.kind, p.default) for p in theirs.values()] == [
        (p.name, p.kind, p.default) for p in ours.values()]


def test_main_demo_call_shows_the_cache_s_pattern(main_demo):
    attention_pattern, gpt2_str_tokens, cache = main_demo
    assert attention_pattern.dim() == 3 and attention_pattern.shape[0] == 4  # (heads, dest, src), batch removed
    for view in (attention_patterns(tokens=gpt2_str_tokens, attention=attention_pattern),
                 attention_heads(tokens=gpt2_str_tokens, attention=attention_pattern)):
        assert isinstance(view, CircuitsView)
        np.testing.assert_array_equal(view.trace.attention()[0], cache["blocks.0.attn.hook_pattern"].numpy())
        assert view.trace.tokens()[0].raw == tuple(gpt2_str_tokens)
        assert "self" in view.trace.masks  # causal weights: masked above the diagonal
        bundle = view._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert "application/vnd.jupyter.widget-view+json" in data  # shows as the widget when it ends a cell
        assert isinstance(view.widget, tx_magic.AttentionWidget)


def test_str_is_a_self_contained_page(main_demo):
    attention_pattern, tokens, _ = main_demo
    view = attention_heads(attention_pattern, tokens)
    page = str(view)
    assert page.startswith("<!DOCTYPE html>") and page == view.show_code()
    assert "<script src" not in page and "https://" not in page  # CircuitsVis's str() loads from a CDN; not this
    assert view.__html__().startswith("<iframe srcdoc=")


def test_one_pattern_and_a_batch_of_one(main_demo):
    pattern, tokens, _ = main_demo
    one = attention_pattern(tokens=tokens, attention=pattern[2])
    np.testing.assert_array_equal(one.trace.attention()[0, 0], pattern[2].numpy())
    batched = attention_heads(pattern[None], tokens)
    assert batched.trace.shape() == (1, 4, len(tokens), len(tokens))


def test_mask_upper_tri_is_honoured():
    rng = np.random.default_rng(0)
    full = rng.random((2, 3, 3)).astype(np.float32)
    full /= full.sum(-1, keepdims=True)
    tokens = ["a", "b", "c"]
    assert "self" not in attention_heads(full, tokens).trace.masks  # bidirectional: nothing masked
    causal = attention_heads(full, tokens, mask_upper_tri=True).trace.masks["self"]
    np.testing.assert_array_equal(causal, np.tril(np.ones((3, 3), dtype=bool)))
    lower = np.tril(full)
    lower /= lower.sum(-1, keepdims=True)
    assert "self" in attention_heads(lower, tokens).trace.masks  # None: masked where the weights are zero above
    assert "self" not in attention_heads(lower, tokens, mask_upper_tri=False).trace.masks


def test_styling_arguments_are_named_in_warnings():
    att = torch.full((2, 3, 3), 1 / 3)
    with pytest.warns(UserWarning, match="is not honoured") as caught:
        attention_heads(att, ["a", "b", "c"], attention_head_names=["x", "y"], max_value=0.5, min_value=0.0,
                        negative_color="red", positive_color="blue")
    named = sorted(str(w.message).split(": ")[1].split(" is not")[0] for w in caught)
    assert named == ["attention_head_names", "max_value", "min_value", "negative_color", "positive_color"]
    assert all("attention_heads" in str(w.message) for w in caught)
    assert caught[0].filename == __file__  # the warning points at the user's call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attention_heads(att, ["a", "b", "c"])


def test_wrong_tokens_say_so():
    att = np.full((2, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="2 input tokens but the attention has 3"):
        attention_heads(att, ["a", "b"])
    with pytest.raises(CompatError, match="one string"):
        attention_heads(att, "a b c")
