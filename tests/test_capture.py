"""capture() returns exactly the model's attention, for every model family, and leaves the model as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_bart, tiny_gpt2, tiny_llama

import tx_magic

TEXT = "The animal didn't cross the street because it was too tired."


def _eager_reference(model, **inputs):
    """The model's own attention, through a separately built eager copy of it."""
    ref = type(model)(model.config.__class__.from_dict(model.config.to_dict())).eval()
    ref.load_state_dict(model.state_dict())
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        return ref(**{k: torch.tensor([v]) for k, v in inputs.items()}, output_attentions=True)


def test_minilm_matches_attention_recomputed_from_weights(minilm):
    """Independent of transformers' attention code: softmax(QK^T / sqrt(d)) from each layer's input."""
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT)
    ids = torch.tensor([minilm.tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        hidden = minilm.model(input_ids=ids, output_hidden_states=True).hidden_states
        att = trace.attention("self")
        heads = minilm.model.config.num_attention_heads
        for layer, block in enumerate(minilm.model.encoder.layer):
            h = hidden[layer][0]
            q = block.attention.self.query(h).view(len(h), heads, -1).transpose(0, 1)
            k = block.attention.self.key(h).view(len(h), heads, -1).transpose(0, 1)
            expected = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1).numpy()
            np.testing.assert_allclose(att[layer], expected, atol=2e-6)
    assert trace.kinds == ("self",)
    assert att.dtype == np.float32 and att.shape == (6, 12, ids.shape[1], ids.shape[1])


def test_minilm_tokens_are_readable_and_flag_specials(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT)
    queries, keys = trace.tokens("self")
    assert queries is keys
    assert list(queries[:4]) == ["[CLS]", "The", "animal", "didn"]
    assert queries.special[0] and queries.special[-1] and not any(queries.special[1:-1])
    assert queries.raw[1] == "the"  # uncased vocabulary; the display keeps the text as typed


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama-gqa"])
def test_decoder_only_equals_eager_and_is_causal(build, gpt2_tokenizer):
    model = build(vocab_size=len(gpt2_tokenizer))
    assert model.config._attn_implementation == "sdpa"
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    ids = gpt2_tokenizer(TEXT)["input_ids"]
    expected = np.stack([a[0].numpy() for a in _eager_reference(model, input_ids=ids).attentions])
    np.testing.assert_allclose(trace.attention(), expected, atol=1e-6)
    n = len(ids)
    assert trace.attention().shape == (2, 4, n, n)
    assert np.array_equal(trace.mask(), np.tril(np.ones((n, n), dtype=bool)))
    assert not np.triu(trace.attention(), k=1).any()
    np.testing.assert_allclose(trace.attention().sum(-1), 1.0, atol=1e-5)
    assert model.config._attn_implementation == "sdpa", "capture must leave the model's attention as it was"


def test_encoder_decoder_has_three_kinds_equal_to_eager(minilm):
    tok = minilm.tokenizer
    model = tiny_bart(tok.vocab_size, start_id=tok.cls_token_id)
    model.train()
    trace = tx_magic.capture(model, tok, "the source sentence", target="a target")
    assert trace.kinds == ("encoder", "decoder", "cross")
    src = tok("the source sentence")["input_ids"]
    dec = model.prepare_decoder_input_ids_from_labels(labels=torch.tensor([tok(text_target="a target")["input_ids"]]))
    ref = _eager_reference(model, input_ids=src, decoder_input_ids=dec[0].tolist())
    for kind, field in [("encoder", "encoder_attentions"), ("decoder", "decoder_attentions"),
                        ("cross", "cross_attentions")]:
        np.testing.assert_allclose(trace.attention(kind), np.stack([a[0].numpy() for a in getattr(ref, field)]),
                                   atol=1e-6)
    queries, keys = trace.tokens("cross")
    assert len(keys) == len(src) and len(queries) == dec.shape[1]
    assert trace.attention("cross").shape == (3, 2, len(queries), len(keys))
    assert trace.attention("encoder").shape == (2, 4, len(src), len(src))
    assert model.training, "capture must restore the train/eval mode"


def test_gpt2_tokens_lose_byte_level_markers(gpt2_tokenizer):
    model = tiny_gpt2()
    trace = tx_magic.capture(model, gpt2_tokenizer, "Hello world, 猫 and 😀!")
    tokens = trace.tokens()[0]
    assert tokens.raw[1] == "Ġworld"
    assert tokens[1] == "world"
    assert "猫" in "".join(tokens) and "😀" in "".join(tokens)
    assert not any("Ġ" in t for t in tokens)


def test_long_text_is_truncated_with_a_visible_warning(gpt2_tokenizer):
    model = tiny_gpt2(positions=16)
    trace = tx_magic.capture(model, gpt2_tokenizer, "one two three four five " * 10)
    assert trace.shape()[2] == 16
    assert any("at most 16" in w for w in trace.warnings)


def test_max_tokens_truncates_too(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT, max_tokens=5)
    assert trace.shape()[2:] == (5, 5)
    assert trace.warnings


def test_model_on_device_and_dtype_float32_output(gpt2_tokenizer):
    model = tiny_gpt2().to(torch.bfloat16)
    trace = tx_magic.capture(model, gpt2_tokenizer, "short text")
    assert trace.attention().dtype == np.float32
    np.testing.assert_allclose(trace.attention().sum(-1), 1.0, atol=2e-2)


def test_trace_validates_shapes():
    seq = tx_magic.Tokens(text=("a", "b"))
    with pytest.raises(ValueError, match="query x key"):
        tx_magic.Trace("m", {"input": seq}, {"self": np.zeros((1, 1, 3, 3))})
    with pytest.raises(KeyError, match="no 'cross'"):
        tx_magic.Trace("m", {"input": seq}, {"self": np.zeros((1, 1, 2, 2))}).attention("cross")


def test_sentence_pair_marks_each_token_with_its_text(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.", pair="It was tired.")
    tokens = trace.tokens()[0]
    assert list(tokens) == ["[CLS]", "The", "cat", "sat", ".", "[SEP]", "It", "was", "tired", ".", "[SEP]"]
    assert tokens.segment == (0,) * 6 + (1,) * 5
    ids = minilm.tokenizer("The cat sat.", "It was tired.", return_tensors="pt")
    with torch.no_grad():
        minilm.model.set_attn_implementation("eager")
        try:
            ref = minilm.model(**ids, output_attentions=True).attentions
        finally:
            minilm.model.set_attn_implementation("sdpa")
    np.testing.assert_allclose(trace.attention(), np.stack([a[0].numpy() for a in ref]), atol=1e-6)


def test_pair_segments_without_token_type_ids(gpt2_tokenizer):
    trace = tx_magic.capture(tiny_gpt2(), gpt2_tokenizer, "Hello world", pair="Bye now")
    tokens = trace.tokens()[0]
    by_segment = ["".join(t for t, s in zip(tokens, tokens.segment, strict=True) if s == seg) for seg in (0, 1)]
    assert by_segment == ["Helloworld", "Byenow"]
    assert tokens.segment[:2] == (0, 0) and tokens.segment[-1] == 1
