"""capture(..., ablate=, ablation=, edit=): the trace is of the intervened run, equal (1e-5) to the same
intervention made by hand with plain forward hooks on the output projection (tests/reference_heads.py),
on GPT-2-, Llama- (grouped KV) and BERT-shaped models; bad requests get one line; the model is put back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from conftest import tiny_gpt2, tiny_llama
from reference_heads import head_inputs, head_size, projections, run

import tx_magic
from tx_magic.capturing import hf, interventions, memory
from tx_magic.core.errors import NoAttentionError, OptionError
from tx_magic.core.intervention import Intervention, intervention_of

TEXT = "When Mary and John went to the store, John gave a drink to"
TOL = {"rtol": 1e-5, "atol": 1e-5}


def tiny_bert(vocab_size: int) -> tf.BertModel:
    """BERT-shaped; weights drawn wider than BERT's init, so attention is not near uniform."""
    torch.manual_seed(0)
    return tf.BertModel(tf.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                      intermediate_size=64, vocab_size=vocab_size, initializer_range=0.5)).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama", "bert"])
def case(request, gpt2_tokenizer, minilm):
    if request.param == "bert":
        return tiny_bert(minilm.tokenizer.vocab_size), minilm.tokenizer
    model = tiny_gpt2() if request.param == "gpt2" else tiny_llama(gpt2_tokenizer.vocab_size)
    return model, gpt2_tokenizer


def ids_of(tokenizer, text: str = TEXT) -> torch.Tensor:
    return torch.tensor([tokenizer(text)["input_ids"]])


def main_output(model, out) -> torch.Tensor:
    """The last position's logits, or an encoder's last hidden state."""
    return out.logits[0, -1] if getattr(out, "logits", None) is not None else out.last_hidden_state[0]


def trace_output(trace) -> np.ndarray:
    return trace.internals.last_logits if trace.internals.last_logits is not None else trace.internals.hidden_states[-1]


def eager_attentions(model, ids, edit=None) -> list[torch.Tensor]:
    model.set_attn_implementation("eager")
    try:
        handles = [p.register_forward_pre_hook(lambda _m, a, layer=layer: (edit(layer, a[0]),))
                   for layer, p in enumerate(projections(model))] if edit else []
        try:
            with torch.no_grad():
                return list(model(ids, output_attentions=True).attentions)
        finally:
            for h in handles:
                h.remove()
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_ablated_run_equals_hooks_on_the_projection_input(case, ablation):
    model, tok = case
    d = head_size(model)
    heads = [(0, 1), (1, 2), (1, 3)]

    def edit(layer, x):
        x = x.clone()
        for lay, h in heads:
            if lay == layer:
                cols = slice(h * d, (h + 1) * d)
                x[..., cols] = 0 if ablation == "zero" else x[..., cols].mean(dim=1, keepdim=True)
        return x

    ids = ids_of(tok)
    expected = main_output(model, run(model, ids, edit))
    trace = tx_magic.capture(model, tok, TEXT, ablate=heads, ablation=ablation)
    np.testing.assert_allclose(trace_output(trace), expected.numpy(), **TOL)
    unablated = tx_magic.capture(model, tok, TEXT)
    assert np.abs(trace_output(trace) - trace_output(unablated)).max() > 1e-3  # the ablation did something
    for layer, att in enumerate(eager_attentions(model, ids, edit)):  # the trace's attention is the ablated run's
        np.testing.assert_allclose(trace.attention()[layer], att[0].numpy(), **TOL)
    assert trace.intervention == Intervention(tuple(("self", lay, h) for lay, h in heads), ablation)
    assert unablated.intervention is None


def values_of(model, ids, edit=None) -> list[torch.Tensor]:
    """Each layer's value vectors (1, n, Hkv*d), read off the value projection with forward hooks."""
    seen: list[torch.Tensor] = []
    if hasattr(model, "transformer"):
        mods = [b.attn.c_attn for b in model.transformer.h]
        take = lambda out: out[..., 2 * model.config.n_embd:]  # noqa: E731 - c_attn gives q, k, v side by side
    elif hasattr(model, "encoder"):
        mods, take = [layer.attention.self.value for layer in model.encoder.layer], (lambda out: out)
    else:
        mods, take = [layer.self_attn.v_proj for layer in model.model.layers], (lambda out: out)
    handles = [m.register_forward_hook(lambda _m, _a, out: seen.append(take(out).detach().clone())) for m in mods]
    try:
        run(model, ids, edit)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_edited_weight_carries_through_the_run(case):
    """Blocking key 1 of L0H0's query 4 and setting weight (query 5, key 2) of L1H3 to 0.5 equals adding
    (edited row - row) @ values to that head's slice of the projection input, by hand, layer by layer
    (layer 1's row and values are those of the run with layer 0 edited)."""
    model, tok = case
    ids = ids_of(tok)
    d, heads = head_size(model), model.config.num_attention_heads
    groups = heads // getattr(model.config, "num_key_value_heads", heads)
    edits = [(0, 0, 4, 1, 0.0), (1, 3, 5, 2, 0.5)]
    rows: dict[int, tuple] = {}

    def edit(layer, x):
        if layer not in rows:
            return x
        h, q, new, row, values = rows[layer]
        kv = h // groups
        x = x.clone()
        x[0, q, h * d:(h + 1) * d] += (new - row) @ values[0, :, kv * d:(kv + 1) * d]
        return x

    for layer, h, q, k, w in edits:  # each layer's row and values as the run edited below it has them
        row = eager_attentions(model, ids, edit)[layer][0, h, q].clone()
        values = values_of(model, ids, edit)[layer]
        rest = row.clone()
        rest[k] = 0
        new = rest * (1 - w) / rest.sum()
        new[k] = w
        rows[layer] = (h, q, new, row, values)

    expected = main_output(model, run(model, ids, edit))
    trace = tx_magic.capture(model, tok, TEXT, edit=edits)
    np.testing.assert_allclose(trace_output(trace), expected.numpy(), **TOL)
    for layer, (h, q, new, *_) in rows.items():
        np.testing.assert_allclose(trace.attention()[layer, h, q], new.numpy(), **TOL)
        assert trace.attention()[layer, h, q].sum() == pytest.approx(1, abs=1e-6)
    assert trace.attention()[0, 0, 4, 1] == 0  # weight 0 blocks the key
    assert np.abs(trace_output(trace) - trace_output(tx_magic.capture(model, tok, TEXT))).max() > 1e-4
    assert "edited: L0H0 4→1 = 0, L1H3 5→2 = 0.5" in trace.intervention.label()


def test_the_label_names_the_heads():
    iv = intervention_of([(5, 1), (5, 5), (5, 1)], "mean")
    assert iv.label() == "ablated (mean): L5H1, L5H5"
    assert intervention_of([(5, 1)]).label() == "ablated: L5H1"
    assert iv.toggled(("self", 5, 1)).ablate == (("self", 5, 5),)
    assert iv.toggled(("self", 2, 0)).ablate == (("self", 2, 0), ("self", 5, 1), ("self", 5, 5))
    assert intervention_of([("cross", 1, 0)]).label() == "ablated: cross L1H0"
    assert intervention_of(None, "zero", []) is None


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"ablate": [(2, 0)]},
     "head (2, 0) is out of range: GPT2LMHeadModel's attention has 2 layers (0..1) x 4 heads (0..3)"),
    ({"ablate": [(0, -1)]}, "out of range"),
    ({"ablate": [(1,)]}, "each head to ablate is a tuple (layer, head)"),
    ({"ablate": [(0, 1)], "ablation": "half"}, "ablation must be one of ['zero', 'mean']"),
    ({"ablate": [(0.5, 1)]}, "a layer must be a whole number"),
    ({"edit": [(0, 0, 3, 1, 1.5)]}, "an edit's weight must be in 0..1"),
    ({"edit": [(0, 0, 99, 1, 0.5)]}, "outside the 14 x 14 attention of this input"),
    ({"edit": [(0, 0, 2, 5, 0.5)]}, "query 2 cannot attend to key 5 (the mask forbids it)"),
    ({"edit": [(0, 0, 0, 0, 0.5)]}, "query 0 attends to no key but the edited ones"),
    ({"edit": [(0, 0, 3, 1, 0.7), (0, 0, 3, 2, 0.7)]}, "set weights summing to 1.4"),
    ({"ablate": [("encoder", 0, 1)]}, "has no 'encoder' attention"),
])
def test_bad_requests_get_one_line(gpt2_tokenizer, kwargs, words):
    model = tiny_gpt2()
    with pytest.raises(OptionError) as err:
        tx_magic.capture(model, gpt2_tokenizer, TEXT, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


class Custom(torch.nn.Module):
    """Any torch module: captured with forward hooks, which only watch."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.embed = torch.nn.Embedding(50, 8)

    def forward(self, ids):
        x = self.embed(ids)
        return self.attn(x, x, x)[0]


def test_models_outside_the_attention_interface_are_refused_in_one_line(gpt2_tokenizer, monkeypatch):
    with pytest.raises(NoAttentionError, match="transformers' attention interface") as err:
        tx_magic.capture(Custom(), lambda _t: torch.tensor([[1, 2, 3]]), "abc", ablate=[(0, 0)])
    assert "\n" not in str(err.value)
    model = tiny_gpt2()
    monkeypatch.setattr(hf.memory, "plan_capture", lambda *_a, **_k: memory.Plan(memory.STREAMED, 0))
    with pytest.raises(NoAttentionError, match=r"streamed capture .*pass max_tokens"):
        tx_magic.capture(model, gpt2_tokenizer, TEXT, ablate=[(0, 0)])


def state(model) -> tuple:
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    forwards = [m for m in model.modules() if "forward" in m.__dict__]
    flags = [p.requires_grad for p in model.parameters()]
    return model.config._attn_implementation, model.training, hooks, forwards, flags


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_the_model_is_put_back_after_an_error_or_ctrl_c(gpt2_tokenizer, monkeypatch, error):
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    tx_magic.capture(model, gpt2_tokenizer, TEXT)  # transformers adds its output-recording hooks at the first pass
    model.train()
    before = state(model)

    def explode(*_a):
        raise error

    monkeypatch.setattr(interventions.Ablate, "on_output", explode)
    with pytest.raises((type(error), tx_magic.TxMagicError)):
        tx_magic.capture(model, gpt2_tokenizer, TEXT, ablate=[(1, 0)])
    assert state(model) == before
    monkeypatch.undo()
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT, ablate=[(1, 0)])  # and it still works
    assert trace.intervention is not None and state(model) == before


def test_head_inputs_are_the_heads_outputs(gpt2_tokenizer):
    """The reference's premise: concatenated head outputs are what the projection reads (its output is
    the attention block's)."""
    model = tiny_gpt2()
    ids = ids_of(gpt2_tokenizer)
    inputs = head_inputs(model, ids)
    block = model.transformer.h[1].attn
    seen = []
    handle = block.register_forward_hook(lambda _m, _a, out: seen.append(out[0]))
    try:
        with torch.no_grad():
            model(ids)
    finally:
        handle.remove()
    torch.testing.assert_close(block.c_proj(inputs[1]), seen[0])
