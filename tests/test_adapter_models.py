"""Models of other libraries given to `explain` (the real libraries, offline models): sentence-transformers'
SentenceTransformer and CrossEncoder (the default model's own weights), nnsight's LanguageModel, transformers
pipelines; and `show(outputs, tokens)` for a ModelOutput. Each is compared with the attention the library's own
run reports (its model's output_attentions, nnsight's saved module outputs) on its own tokenization."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import transformers as tf
from conftest import tiny_bart
from sentence_transformers import CrossEncoder, SentenceTransformer

import tx_magic
from tx_magic.capturing.adapters import unwrap_model
from tx_magic.capturing.adapters.outputs import OutputsError
from tx_magic.capturing.load import DEFAULT_MODEL_NAME, default_model_path

TEXT = "The animal didn't cross the street because it was too tired."


def stacked(attentions):
    return np.stack([a[0].detach().float().numpy() for a in attentions])


@pytest.fixture(scope="module")
def sentence_model():
    return SentenceTransformer(str(default_model_path()), device="cpu")


def own_attention(st_model, *texts):
    """The attention the sentence-transformers model's transformer reports on the library's own tokenization,
    from an eager copy of the same weights."""
    features = st_model.preprocess([texts[0]] if len(texts) == 1 else [list(texts)])
    inputs = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}
    inner = unwrap_model(st_model).model
    eager = type(inner)(inner.config.__class__.from_dict(inner.config.to_dict())).eval()
    eager.load_state_dict(inner.state_dict())
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        return stacked(eager(**inputs, output_attentions=True).attentions), inputs["input_ids"][0].tolist()


def test_sentence_transformer_needs_no_tokenizer_and_equals_its_own_attention(sentence_model):
    inner = unwrap_model(sentence_model).model
    sentence_model.train()  # left in training mode by the user: restored after the eval-mode pass
    before = (inner.config._attn_implementation, sentence_model.training, inner.training)
    trace = tx_magic.explain(sentence_model, text=TEXT).trace
    expected, ids = own_attention(sentence_model, TEXT)
    np.testing.assert_allclose(trace.attention(), expected, atol=1e-6)
    assert list(trace.sequences["input"].ids) == ids
    assert trace.model_name == DEFAULT_MODEL_NAME
    assert (inner.config._attn_implementation, sentence_model.training, inner.training) == before
    sentence_model.eval()


def test_sentence_transformer_keeps_its_max_seq_length(sentence_model):
    limit = sentence_model.max_seq_length
    try:
        sentence_model.max_seq_length = 8
        trace = tx_magic.capture(sentence_model, None, TEXT)
        assert trace.shape()[-1] == 8 and any("at most 8" in w for w in trace.warnings)
        assert tx_magic.capture(sentence_model, None, TEXT, max_tokens=5).shape()[-1] == 5  # the caller's, below it
    finally:
        sentence_model.max_seq_length = limit


def test_cross_encoder_runs_the_pair_as_the_library_does():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a classifier head is added to the embedding model
        cross = CrossEncoder(str(default_model_path()), device="cpu")
    query, passage = "How old is the cat?", "The cat is three years old."
    trace = tx_magic.explain(cross, text=query, pair=passage).trace
    expected, ids = own_attention(cross, query, passage)
    np.testing.assert_allclose(trace.attention(), expected, atol=1e-6)
    tokens = trace.sequences["input"]
    assert list(tokens.ids) == ids
    assert tokens.segment[0] == 0 and tokens.segment[-1] == 1  # the widget's Pair filter: query A, passage B


@pytest.fixture(scope="module")
def nnsight():
    """nnsight, imported for these tests only. Its import mounts a `.save` method on every Python object (a C
    extension); it is taken off afterwards, because it breaks later imports in the same process (TensorFlow's
    `from ...keras.saving import save` then finds the method instead of the module)."""
    import nnsight
    from nnsight._c import unmount

    yield nnsight
    if unmount is not None and hasattr(object(), "save"):
        unmount("save")


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_folder):
    model = tf.GPT2LMHeadModel.from_pretrained(str(tiny_gpt2_folder), attn_implementation="eager").eval()
    return model, tf.AutoTokenizer.from_pretrained(str(tiny_gpt2_folder))


def nnsight_attention(lm, text):
    """What nnsight itself saw: each GPT-2 block's attention module output (weights second, eager)."""
    with lm.trace(text):
        first = lm.transformer.h[0].attn.output[1].save()
        second = lm.transformer.h[1].attn.output[1].save()
    return stacked([first, second])


def test_nnsight_language_model_equals_what_nnsight_saves(nnsight, gpt2):
    model, tokenizer = gpt2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nnsight 0.8 deprecates LanguageModel's name, not the class
        lm = nnsight.LanguageModel(model, tokenizer=tokenizer)
    trace = tx_magic.explain(lm, text=TEXT).trace
    np.testing.assert_allclose(trace.attention(), nnsight_attention(lm, TEXT), atol=1e-6)
    assert list(trace.sequences["input"].ids) == tokenizer(TEXT)["input_ids"]
    assert trace.internals is not None  # the transformers model itself ran: logit lens, next token


def test_nnsight_model_not_yet_dispatched_is_loaded_first(nnsight, tiny_gpt2_folder, gpt2):
    _, tokenizer = gpt2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = nnsight.LanguageModel(str(tiny_gpt2_folder), tokenizer=tokenizer, attn_implementation="eager")
    assert not lm.dispatched  # meta weights until first use
    trace = tx_magic.explain(lm, text=TEXT).trace
    np.testing.assert_allclose(trace.attention(), nnsight_attention(lm, TEXT), atol=1e-6)


def test_pipelines_run_their_model_with_their_tokenizer(gpt2, minilm):
    model, tokenizer = gpt2
    with torch.no_grad():
        expected = stacked(model(**tokenizer(TEXT, return_tensors="pt"), output_attentions=True).attentions)
    generator = tf.pipeline("text-generation", model=model, tokenizer=tokenizer)
    np.testing.assert_allclose(tx_magic.explain(generator, text=TEXT).trace.attention(), expected, atol=1e-6)
    bert = tf.AutoModel.from_pretrained(str(default_model_path()), attn_implementation="eager").eval()
    features = tf.pipeline("feature-extraction", model=bert, tokenizer=minilm.tokenizer)
    enc = minilm.tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        own = stacked(bert(**enc, output_attentions=True).attentions)
    trace = tx_magic.explain(features, text=TEXT).trace
    np.testing.assert_allclose(trace.attention(), own, atol=1e-6)
    assert list(trace.sequences["input"].ids) == enc["input_ids"][0].tolist()


def test_the_magic_takes_these_objects_by_name(shell, sentence_model, nnsight):
    assert hasattr(object(), "save")  # nnsight's mount: --save must still default to None
    shell.user_ns["st_model"] = sentence_model
    widget = shell.run_line_magic("explain", "-m st_model " + TEXT)
    expected, _ = own_attention(sentence_model, TEXT)
    np.testing.assert_allclose(widget.trace.attention(), expected, atol=1e-6)


def test_show_model_outputs_self_and_encoder_decoder(gpt2):
    model, tokenizer = gpt2
    enc = tokenizer(TEXT, return_tensors="pt")
    outputs = model(**enc, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    trace = tx_magic.show(outputs, tokens).trace
    np.testing.assert_array_equal(trace.attention(), stacked(outputs.attentions))
    assert "self" in trace.masks

    bart = tiny_bart(vocab_size=64, start_id=2)
    bart.set_attn_implementation("eager")
    source, target = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[2, 10, 11]])
    out = bart(input_ids=source, decoder_input_ids=target, output_attentions=True)
    trace = tx_magic.show(out, {"source": list("abcde"), "target": ["<s>", "x", "y"]}).trace
    assert trace.kinds == ("encoder", "decoder", "cross")
    for kind in trace.kinds:
        np.testing.assert_array_equal(trace.attention(kind), stacked(getattr(out, f"{kind}_attentions")))

    with pytest.raises(OutputsError, match="output_attentions=True"):
        tx_magic.show(model(**enc), tokens)
    batch = tokenizer(["The cat sat", "A dog ran"], return_tensors="pt")
    with pytest.raises(OutputsError, match="batch of 2"):
        tx_magic.show(model(**batch, output_attentions=True), None)


def test_generation_runs_the_model_inside_a_pipeline(gpt2):
    model, tokenizer = gpt2
    generator = tf.pipeline("text-generation", model=model, tokenizer=tokenizer)
    wrapped = tx_magic.explain(generator, text="The cat", generate=4).trace
    direct = tx_magic.explain(model, tokenizer, "The cat", generate=4).trace
    assert wrapped.generation.new_ids == direct.generation.new_ids and len(direct.generation.new_ids) == 4
    np.testing.assert_array_equal(wrapped.attention(), direct.attention())
