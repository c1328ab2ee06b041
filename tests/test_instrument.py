"""The instrumented attention function: identical to the model's eager attention when nothing
intervenes, instruments see and change what the definitions say, and the model is always put back."""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from conftest import tiny_bart, tiny_gpt2, tiny_llama

from tx_magic.capturing.instrument import Instrument, instrumented

IDS = torch.tensor([[1, 5, 7, 9, 3, 8, 2]])


def tiny_bert() -> tf.BertModel:
    torch.manual_seed(0)
    return tf.BertModel(tf.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                      intermediate_size=64, vocab_size=100)).eval()


MODELS = {
    "gpt2": lambda: tiny_gpt2(vocab_size=100),
    "llama": lambda: tiny_llama(vocab_size=100),
    "bert": tiny_bert,
    "bart": lambda: tiny_bart(vocab_size=100, start_id=2),
}


def run(model: torch.nn.Module, **extra: object) -> object:
    kw = {"decoder_input_ids": torch.tensor([[2, 4, 6]])} if model.config.is_encoder_decoder else {}
    with torch.inference_mode():
        return model(IDS, output_attentions=True, **kw, **extra)


def eager(model: torch.nn.Module) -> object:
    model.set_attn_implementation("eager")
    try:
        return run(model)
    finally:
        model.set_attn_implementation("sdpa")


def main_output(out: object) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("name", list(MODELS))
def test_without_interventions_every_number_is_the_eager_one(name):
    model = MODELS[name]()
    model.set_attn_implementation("sdpa")
    reference = eager(model)
    with instrumented(model) as r:
        out = run(model)
    assert r.calls > 0
    assert torch.equal(main_output(out), main_output(reference))
    fields = [f for f in ("attentions", "encoder_attentions", "decoder_attentions", "cross_attentions")
              if getattr(reference, f, None) is not None]
    for f in fields:
        for a, b in zip(getattr(out, f), getattr(reference, f), strict=True):
            assert torch.equal(a, b), f
    assert model.config._attn_implementation == "sdpa" and not model.training


class Recorder(Instrument):
    def __init__(self) -> None:
        self.inputs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.weights: dict[int, torch.Tensor] = {}

    def on_inputs(self, call, query, key, value):
        self.inputs[call.layer] = (query.clone(), key.clone(), value.clone())

    def on_weights(self, call, weights):
        self.weights[call.layer] = weights.clone()


def test_queries_and_keys_reproduce_the_weights_llama_grouped_kv():
    model = tiny_llama(vocab_size=100)
    rec = Recorder()
    with instrumented(model, rec):
        out = run(model)
    n = IDS.shape[1]
    causal = torch.full((n, n), float("-inf")).triu(1)
    for layer, att in enumerate(out.attentions):
        q, k, _ = rec.inputs[layer]
        assert k.shape[1] == 2 and q.shape[1] == 4  # the module's own KV heads, before repeating
        scores = q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) / q.shape[-1] ** 0.5 + causal
        torch.testing.assert_close(scores.softmax(-1), att, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rec.weights[layer], att)


class ZeroHead(Instrument):
    def __init__(self, layer: int, head: int) -> None:
        self.layer, self.head = layer, head

    def on_output(self, call, output):
        if call.layer != self.layer:
            return None
        output = output.clone()
        output[:, :, self.head] = 0
        return output


def test_a_heads_output_is_the_output_projections_input_slice():
    """Zeroing head 1 of layer 0 equals zeroing its slice of c_proj's input with a plain pre-hook."""
    model = tiny_gpt2(vocab_size=100)
    d = model.config.n_embd // model.config.n_head

    def pre(_module, args):
        x = args[0].clone()
        x[..., d:2 * d] = 0
        return (x,)

    handle = model.transformer.h[0].attn.c_proj.register_forward_pre_hook(pre)
    try:
        expected = eager(model).logits
    finally:
        handle.remove()
    with instrumented(model, ZeroHead(0, 1)):
        got = run(model).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, eager(model).logits)


class Block(Instrument):
    """Set weight (query 4, key 0) of head 2 in layer 1 to 0 and renormalise the row."""

    def on_weights(self, call, weights):
        if call.layer != 1:
            return None
        w = weights.clone()
        w[0, 2, 4, 0] = 0
        w[0, 2, 4] /= w[0, 2, 4].sum()
        return w


def test_edited_weights_carry_through_the_layer():
    """The edited row sums to 1, and the output projection of layer 1 reads edited weights @ values."""
    model = tiny_gpt2(vocab_size=100)
    seen = []
    handle = model.transformer.h[1].attn.c_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    rec = Recorder()
    try:
        with instrumented(model, rec, Block()):
            out = run(model)
    finally:
        handle.remove()
    att = out.attentions[1]
    assert att[0, 2, 4, 0] == 0 and torch.isclose(att[0, 2, 4].sum(), torch.tensor(1.0))
    assert rec.weights[1][0, 2, 4, 0] > 0  # the recorder ran before the edit
    _, _, v = rec.inputs[1]
    by_hand = (att @ v).transpose(1, 2).reshape(1, IDS.shape[1], -1)
    torch.testing.assert_close(seen[0], by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(main_output(out), main_output(eager(model)))


class Explode(Instrument):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_weights(self, call, weights):
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_the_model_is_put_back_after_an_error_or_ctrl_c(error):
    model = tiny_llama(vocab_size=100)
    model.set_attn_implementation("sdpa")
    eager(model)  # transformers adds its own output-recording hooks at the first output_attentions pass
    model.train()
    hooks = lambda: [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]  # noqa: E731
    before = hooks()
    with pytest.raises(type(error)), instrumented(model, Explode(error)):
        run(model)
    assert model.config._attn_implementation == "sdpa" and model.training
    assert hooks() == before
