"""The dense capture (`tx_magic.capturing.dense`): one pass writing every layer's weights once into the
trace's array gives the model's own eager attention (output_attentions) to float32 rounding, leaves logits
and hidden states as they were, falls back where it cannot record, and always puts the model back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from conftest import tiny_bart, tiny_gpt2, tiny_llama

import tx_magic
from tx_magic.capturing import dense, hf

TEXT = "The animal didn't cross the street because it was too tired, said the keeper of the zoo."
#: Weights lie in [0, 1]: the chunked products and the eager ones round alike to a few float32 ulps.
WEIGHT_ATOL = 1e-6
#: Each layer's output is ``weights @ value`` over only the allowed keys (eager sums the zeros too).
STATE_ATOL = 1e-5


def tiny_bert(vocab_size: int) -> tf.BertModel:
    torch.manual_seed(0)
    return tf.BertModel(tf.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                      intermediate_size=64, vocab_size=vocab_size)).eval()


def tiny_gemma2(vocab_size: int) -> tf.Gemma2ForCausalLM:
    """Gemma 2: soft-capped scores and sliding-window layers, which the standard formula does not compute."""
    torch.manual_seed(0)
    cfg = tf.Gemma2Config(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                          head_dim=8, intermediate_size=64, vocab_size=vocab_size, attn_logit_softcapping=5.0,
                          sliding_window=4, max_position_embeddings=128)
    return tf.Gemma2ForCausalLM(cfg).eval()


def eager_reference(model, ids: list[int]):
    """The model's own eager attention with output_attentions, run directly (no tx_magic code)."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            return model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    finally:
        model.set_attn_implementation(before)


class Spy:
    """Wraps `hf._dense_forward`: whether the dense path ran and with which recorder."""

    def __init__(self, monkeypatch) -> None:
        self.recorders: list[dense.DenseRecorder] = []
        real = hf._dense_forward

        def spied(*args, **kwargs):
            result = real(*args, **kwargs)
            if result is not None:
                self.recorders.append(result[1])
            return result

        monkeypatch.setattr(hf, "_dense_forward", spied)


def old_path(model, tokenizer, text, monkeypatch):
    """capture() through output_attentions (the path before the dense capture), forced."""
    with monkeypatch.context() as m:
        m.setattr(hf, "_dense_forward", lambda *_a, **_k: None)
        return tx_magic.capture(model, tokenizer, text)


def check_against_eager(trace, reference, causal_lm: bool) -> None:
    expected = torch.stack([a[0] for a in reference.attentions]).numpy()
    got = trace.attention("self")
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=WEIGHT_ATOL)
    hidden = torch.stack([h[0] for h in reference.hidden_states]).numpy()
    np.testing.assert_allclose(trace.internals.hidden_states, hidden, rtol=0, atol=STATE_ATOL)
    if causal_lm:
        np.testing.assert_allclose(trace.internals.last_logits, reference.logits[0, -1].numpy(), rtol=0,
                                   atol=STATE_ATOL)


CASES = {
    "gpt2": lambda vocab: tiny_gpt2(vocab_size=vocab),
    "llama-grouped-kv-rope": tiny_llama,
    "bert": tiny_bert,
}


@pytest.mark.parametrize("name", list(CASES))
def test_dense_weights_are_the_eager_ones(name, gpt2_tokenizer, monkeypatch):
    model = CASES[name](gpt2_tokenizer.vocab_size)
    spy = Spy(monkeypatch)
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert len(spy.recorders) == 1 and spy.recorders[0].by_model == []  # the fast formula, every layer
    ids = gpt2_tokenizer(TEXT)["input_ids"]
    check_against_eager(trace, eager_reference(model, ids), causal_lm=name != "bert")
    old = old_path(model, gpt2_tokenizer, TEXT, monkeypatch)
    np.testing.assert_allclose(trace.attention("self"), old.attention("self"), rtol=0, atol=WEIGHT_ATOL)
    assert trace.masks.keys() == old.masks.keys() and trace.warnings == old.warnings
    np.testing.assert_allclose(trace.internals.hidden_states, old.internals.hidden_states, rtol=0, atol=STATE_ATOL)
    if name != "bert":
        assert int(np.argmax(trace.internals.last_logits)) == int(np.argmax(old.internals.last_logits))


def test_dense_weights_span_several_chunks(gpt2_tokenizer, monkeypatch):
    """Chunks of query rows, each computing only the keys a causal mask allows, join into the whole matrix."""
    monkeypatch.setattr(dense, "CHUNK_ROWS", 5)
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    spy = Spy(monkeypatch)
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert spy.recorders and spy.recorders[0].causal and spy.recorders[0].finite
    att = trace.attention("self")
    assert att.shape[-1] > 3 * dense.CHUNK_ROWS
    check_against_eager(trace, eager_reference(model, gpt2_tokenizer(TEXT)["input_ids"]), causal_lm=True)
    assert np.all(np.triu(att, 1) == 0)  # eager's exact zeros above the diagonal


def test_minilm_real_weights(minilm, monkeypatch):
    spy = Spy(monkeypatch)
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT)
    assert len(spy.recorders) == 1 and not spy.recorders[0].causal
    check_against_eager(trace, eager_reference(minilm.model, minilm.tokenizer(TEXT)["input_ids"]), causal_lm=False)
    assert trace.masks == {}


def test_soft_capping_is_computed_by_the_models_own_eager(gpt2_tokenizer, monkeypatch):
    model = tiny_gemma2(gpt2_tokenizer.vocab_size)
    spy = Spy(monkeypatch)
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert spy.recorders and spy.recorders[0].by_model == [0, 1]  # not the standard formula: eager's weights
    check_against_eager(trace, eager_reference(model, gpt2_tokenizer(TEXT)["input_ids"]), causal_lm=True)


def test_a_different_eager_formula_is_caught_by_the_row_check(gpt2_tokenizer, monkeypatch):
    """A model whose eager attention computes otherwise (here: scores doubled) gets its own weights."""
    from transformers.models.gpt2 import modeling_gpt2

    real = modeling_gpt2.eager_attention_forward
    monkeypatch.setattr(modeling_gpt2, "eager_attention_forward",
                        lambda module, q, *a, **k: real(module, q * 2, *a, **k))
    model = tiny_gpt2(vocab_size=gpt2_tokenizer.vocab_size)
    spy = Spy(monkeypatch)
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert spy.recorders and spy.recorders[0].by_model == [0, 1] and not spy.recorders[0].finite
    check_against_eager(trace, eager_reference(model, gpt2_tokenizer(TEXT)["input_ids"]), causal_lm=True)


def test_encoder_decoder_and_interventions_take_the_old_path(gpt2_tokenizer, monkeypatch):
    calls: list[object] = []
    monkeypatch.setattr(hf, "_dense_forward", lambda *a, **k: calls.append(a))
    bart = tiny_bart(gpt2_tokenizer.vocab_size, start_id=gpt2_tokenizer.eos_token_id)
    trace = tx_magic.capture(bart, gpt2_tokenizer, "the cat sat", target="le chat")
    assert trace.kinds == ("encoder", "decoder", "cross")
    ablated = tx_magic.capture(tiny_gpt2(vocab_size=gpt2_tokenizer.vocab_size), gpt2_tokenizer, TEXT,
                               ablate=[(1, 0)])
    assert ablated.intervention is not None
    assert calls == []


def test_a_pass_the_recorder_cannot_follow_falls_back(gpt2_tokenizer, monkeypatch):
    """A recorder left incomplete (here: it refuses every call) gives the output_attentions capture."""
    monkeypatch.setattr(dense.DenseRecorder, "layer_of", lambda self, *_a: setattr(self, "failed", "test"))
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    check_against_eager(trace, eager_reference(model, gpt2_tokenizer(TEXT)["input_ids"]), causal_lm=True)


def state(model) -> tuple:
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    forwards = [m for m in model.modules() if "forward" in m.__dict__]
    return model.config._attn_implementation, model.training, hooks, forwards


@pytest.mark.parametrize("error", [None, RuntimeError("boom"), KeyboardInterrupt()],
                         ids=["success", "error", "ctrl-c"])
def test_the_model_is_put_back(gpt2_tokenizer, monkeypatch, error):
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    tx_magic.capture(model, gpt2_tokenizer, TEXT)  # transformers adds its output-recording hooks at the first pass
    model.train()
    before = state(model)
    assert before[0] == "sdpa"
    if error is not None:
        def explode(*_a, **_k):
            raise error

        monkeypatch.setattr(dense, "_fast", explode)
        with pytest.raises((type(error), tx_magic.TxMagicError)):
            tx_magic.capture(model, gpt2_tokenizer, TEXT)
    else:
        tx_magic.capture(model, gpt2_tokenizer, TEXT)
    assert state(model) == before
    monkeypatch.undo()
    assert tx_magic.capture(model, gpt2_tokenizer, TEXT).attention("self").shape[0] == 2  # and it still works
    assert state(model) == before


def _masks(n: int) -> dict[str, torch.Tensor | None]:
    low = torch.finfo(torch.float32).min
    causal = torch.full((n, n), low).triu(1)[None, None]
    padded = torch.zeros(1, 1, 1, n)
    padded[..., -5:] = low                                      # the last 5 keys are padding, for every row
    rows = torch.arange(n)
    bias = -0.25 * (rows[:, None] - rows[None, :]).clamp(min=0).float()
    bias[:, :3] = 0.0                                           # a zero prefix, then finite non-zero values
    return {"none": None, "causal": causal, "padded": padded, "bias+causal": causal + bias}


@pytest.mark.parametrize("scaling", [0.125, 0.3], ids=["power-of-two", "other"])
@pytest.mark.parametrize("kind", ["none", "causal", "padded", "bias+causal"])
def test_the_chunks_compute_the_formula(monkeypatch, kind, scaling):
    """`dense._fast` against softmax(q k^T * scaling + mask) @ v written here in plain torch, for masks that
    skip the mask add on some keys (causal: all but the diagonal block) and ones that need it everywhere."""
    monkeypatch.setattr(dense, "CHUNK_ROWS", 7)
    n, heads, kv_heads, d = 30, 4, 2, 16
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, h, n, d, generator=gen) for h in (heads, kv_heads, kv_heads))
    mask = _masks(n)[kind]
    recorder = dense.DenseRecorder(layers=1, n=n)
    assert recorder.layer_of(object(), q, k) == 0
    out = dense._fast(recorder, 0, q, k, v, mask, scaling)
    keys, values = k[:, [h // 2 for h in range(heads)]], v[:, [h // 2 for h in range(heads)]]
    scores = q @ keys.transpose(-1, -2) * scaling
    expected = torch.softmax(scores if mask is None else scores + mask, dim=-1)
    assert recorder.array is not None
    np.testing.assert_allclose(recorder.array[0], expected[0].numpy(), rtol=0, atol=WEIGHT_ATOL)
    np.testing.assert_allclose(out.numpy(), (expected @ values).transpose(1, 2).numpy(), rtol=0, atol=STATE_ATOL)
    assert recorder.causal == (kind in ("causal", "bias+causal"))  # which keys are allowed, not their bias
    if recorder.causal:
        assert np.all(np.triu(recorder.array[0], 1) == 0)



def test_a_closed_widget_frees_its_weights_at_once(gpt2_tokenizer):
    """A closed explain() widget lets its trace's weights go when the last reference does, without
    waiting for the cyclic collector (an anywidget file watcher held every one; then the message
    handler and the reruns made cycles that kept gigabytes until a collection)."""
    import gc
    import weakref

    widget = tx_magic.explain(tiny_llama(gpt2_tokenizer.vocab_size), gpt2_tokenizer, TEXT)
    widget.ablate([(0, 1)])  # the reruns keep the unintervened run too
    shown, baseline = (weakref.ref(t.attentions["self"]) for t in (widget.trace, widget._reruns_of.original()))
    assert shown() is not None and baseline() is not None
    gc.collect()
    gc.disable()
    try:
        widget.close()
        del widget
        assert shown() is None and baseline() is None
    finally:
        gc.enable()
