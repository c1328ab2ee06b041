"""tx_magic.patch: exact patching (batched, layers below a chunk's first patch skipped) and attribution
patching equal, to 1e-5, an independent implementation with plain hooks on the output projection, one
unbatched run per head (tests/reference_heads.py), on GPT-2-, Llama- (grouped KV) and BERT-shaped models,
the real MiniLM (cosine metric) and BART (the decoder's logits); bad requests get one line; the model is
put back after errors and Ctrl-C."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import transformers as tf
from reference_heads import head_inputs, head_size, readout, replace_slice, run

import tx_magic
from tx_magic.analysis import patching
from tx_magic.capturing import interventions, memory, patch_runs
from tx_magic.core.errors import NoAttentionError, OptionError, TxMagicError

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
TOL = {"rtol": 1e-5, "atol": 1e-5}


def gpt2() -> tf.GPT2LMHeadModel:
    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64,
                                            initializer_range=0.3)).eval()


def llama(vocab: int) -> tf.LlamaForCausalLM:
    torch.manual_seed(0)
    return tf.LlamaForCausalLM(tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              hidden_size=32, intermediate_size=64, vocab_size=vocab,
                                              max_position_embeddings=128, initializer_range=0.3)).eval()


def bert(vocab: int) -> tf.BertModel:
    torch.manual_seed(0)
    return tf.BertModel(tf.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                      intermediate_size=64, vocab_size=vocab, initializer_range=0.5)).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama", "bert"])
def case(request, gpt2_tokenizer, minilm):
    if request.param == "bert":
        tok = minilm.tokenizer
        return bert(tok.vocab_size), tok, "The cat sat on the warm mat.", "The dog sat on the warm mat.", {}
    model = gpt2() if request.param == "gpt2" else llama(gpt2_tokenizer.vocab_size)
    return model, gpt2_tokenizer, CLEAN, CORRUPT, {"answer": " Mary", "wrong": " John"}


def ids(tok, text: str) -> torch.Tensor:
    return torch.tensor([tok(text)["input_ids"]])


def reference_metric(model, tok, clean: str, kw: dict):
    """The metric, from its definition, on a reference run's output."""
    if kw:
        a, w = (tok(kw[k], add_special_tokens=False)["input_ids"][0] for k in ("answer", "wrong"))
        return lambda out: (lambda lg: lg[a] - lg[w])(readout(model, out))
    pooled = readout(model, run(model, ids(tok, clean)))
    return lambda out: readout(model, out, pooled)


def reference_exact(model, tok, clean, corrupt, kw, by):
    metric = reference_metric(model, tok, clean, kw)
    source = head_inputs(model, ids(tok, clean))
    layers, heads, d, n = len(source), model.config.num_attention_heads, head_size(model), source[0].shape[1]
    sites = {"head": [(lay, [h], None) for lay in range(layers) for h in range(heads)],
             "layer": [(lay, None, None) for lay in range(layers)],
             "position": [(lay, None, [p]) for lay in range(layers) for p in range(n)]}[by]
    out = []
    for layer, hs, ps in sites:
        edit = lambda lay, x, layer=layer, hs=hs, ps=ps: replace_slice(x, source[lay], hs, ps, d) if lay == layer else x  # noqa: E731
        out.append(float(metric(run(model, ids(tok, corrupt), edit))))
    return np.array(out), float(metric(run(model, ids(tok, clean)))), float(metric(run(model, ids(tok, corrupt))))


def reference_gradient(model, tok, clean, corrupt, kw, by):
    metric = reference_metric(model, tok, clean, kw)
    source, corrupted = head_inputs(model, ids(tok, clean)), head_inputs(model, ids(tok, corrupt))
    d = head_size(model)
    deltas = [torch.zeros_like(x, requires_grad=True) for x in corrupted]
    value = metric(run(model, ids(tok, corrupt), lambda lay, x: x + deltas[lay], grad=True))
    grads = torch.autograd.grad(value, deltas)
    out = []
    for g, c, x in zip(grads, source, corrupted, strict=True):
        per = (g * (c - x))[0].reshape(c.shape[1], -1, d).sum(-1)  # (positions, heads)
        out.append({"head": per.sum(0), "layer": per.sum(), "position": per.sum(1)}[by].detach().double().numpy())
    return float(value.detach()) + np.array(out).ravel()


@pytest.mark.parametrize("by", ["head", "layer", "position"])
def test_exact_patching_equals_one_hooked_run_per_site(case, by):
    model, tok, clean, corrupt, kw = case
    expected, m_clean, m_corrupt = reference_exact(model, tok, clean, corrupt, kw, by)
    got = tx_magic.patch(model, tok, clean, corrupt, by=by, **kw)
    np.testing.assert_allclose(got.raw.ravel(), expected, **TOL)
    assert got.metric_clean == pytest.approx(m_clean, abs=1e-5)
    assert got.metric_corrupt == pytest.approx(m_corrupt, abs=1e-5)
    assert abs(m_clean - m_corrupt) > 1e-2 and np.ptp(np.append(expected, m_corrupt)) > 1e-2  # could fail
    np.testing.assert_allclose(got.effects, (got.raw - m_corrupt) / (m_clean - m_corrupt), rtol=1e-4, atol=1e-4)
    shape = {"head": (2, 4), "layer": (2,), "position": (2, len(tok(clean)["input_ids"]))}[by]
    assert got.raw.shape == got.effects.shape == shape and (got.by, got.method) == (by, "exact")


@pytest.mark.parametrize("by", ["head", "layer", "position"])
def test_gradient_patching_equals_autograd_through_hooks(case, by):
    model, tok, clean, corrupt, kw = case
    expected = reference_gradient(model, tok, clean, corrupt, kw, by)
    flags = [p.requires_grad for p in model.parameters()]
    got = tx_magic.patch(model, tok, clean, corrupt, by=by, method="gradient", **kw)
    np.testing.assert_allclose(got.raw.ravel(), expected, **TOL)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient was written


def test_layers_below_a_chunks_first_patch_are_skipped_and_the_numbers_stay(gpt2_tokenizer, monkeypatch):
    model = llama(gpt2_tokenizer.vocab_size)
    kw = {"answer": " Mary", "wrong": " John"}
    calls: dict[tuple, int] = {}
    original = interventions.PatchOutputs.on_output

    def counting(self, call, output):
        site = self.layout.site(call)
        calls[site] = calls.get(site, 0) + 1
        return original(self, call, output)

    monkeypatch.setattr(interventions.PatchOutputs, "on_output", counting)
    one_row = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, chunk_tokens=1, **kw)
    assert calls == {("self", 0): 4, ("self", 1): 8}  # layer 0 ran only for the 4 runs that patch it
    calls.clear()
    together = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, chunk_tokens=10_000, **kw)
    assert calls == {("self", 0): 1, ("self", 1): 1}  # one forward of 8 rows
    np.testing.assert_allclose(one_row.raw, together.raw, **TOL)
    attention = {("self", i): layer.self_attn for i, layer in enumerate(model.model.layers)}
    blocks = patch_runs.layer_blocks(model, attention, 2)
    assert blocks == list(model.model.layers)


def test_minilm_default_metric_is_the_cosine_to_the_clean_embedding(minilm):
    model, tok = minilm.model, minilm.tokenizer
    clean, corrupt = "The cat sat on the warm mat.", "The dog sat on the warm mat."
    expected, m_clean, m_corrupt = reference_exact(model, tok, clean, corrupt, {}, "head")
    got = tx_magic.patch(model, tok, clean, corrupt)
    assert got.raw.shape == (6, 12) and got.metric_clean == pytest.approx(1, abs=1e-6) == m_clean
    np.testing.assert_allclose(got.raw.ravel(), expected, **TOL)
    assert "cosine" in got.metric and got.metric_corrupt == pytest.approx(m_corrupt, abs=1e-6) and m_corrupt < 0.99


def test_encoder_decoder_metric_is_the_decoders_logits(gpt2_tokenizer):
    torch.manual_seed(0)
    model = tf.BartForConditionalGeneration(tf.BartConfig(
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=2, d_model=32,
        encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=gpt2_tokenizer.vocab_size, max_position_embeddings=64,
        decoder_start_token_id=0, pad_token_id=0, init_std=0.3)).eval()
    target = "gave a drink to"
    labels = torch.tensor([gpt2_tokenizer(text_target=target)["input_ids"]])
    decoder = tf.models.bart.modeling_bart.shift_tokens_right(labels, 0, 0)
    a, w = gpt2_tokenizer(" Mary")["input_ids"][0], gpt2_tokenizer(" John")["input_ids"][0]

    def metric(text, edit=None):
        logits = run(model, ids(gpt2_tokenizer, text), edit, target=decoder).logits[0, -1]
        return float(logits[a] - logits[w])

    source = head_inputs(model, ids(gpt2_tokenizer, CLEAN), target=decoder)
    d = head_size(model)
    expected = [metric(CORRUPT, lambda lay, x, layer=layer, h=h: replace_slice(x, source[lay], [h], None, d)
                       if lay == layer else x) for layer in range(2) for h in range(4)]
    got = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", wrong=" John", target=target)
    assert got.kind == "encoder" and got.raw.shape == (2, 4)
    assert got.metric_clean == pytest.approx(metric(CLEAN), abs=1e-5)
    np.testing.assert_allclose(got.raw.ravel(), expected, **TOL)
    cross = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", wrong=" John", target=target,
                           kind="cross")
    assert cross.raw.shape == (2, 2) and cross.tokens[0] != got.tokens[0]  # the decoder's tokens


def test_results_read_as_a_table_a_top_list_and_a_rank_correlation(gpt2_tokenizer):
    model = gpt2()
    kw = {"answer": " Mary", "wrong": " John"}
    exact = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, **kw)
    gradient = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, method="gradient", **kw)
    rows = exact.table()
    assert len(rows) == 8 and list(rows.columns) == ["layer", "head", "effect", "raw"]
    assert list(rows["effect"].abs()) == sorted(rows["effect"].abs(), reverse=True)
    (layer, head), effect = exact.top(1)[0]
    assert effect == exact.effects[layer, head] == pytest.approx(rows["effect"].iloc[0])
    expected = scipy.stats.spearmanr(exact.effects.ravel(), gradient.effects.ravel()).statistic
    assert tx_magic.rank_correlation(exact, gradient) == pytest.approx(expected, abs=1e-12)
    ties = np.array([1.0, 2, 2, 3, 5, 5, 5, 0])
    other = np.array([2.0, 1, 3, 3, 4, 6, 5, 0])
    assert tx_magic.rank_correlation(ties, other) == pytest.approx(scipy.stats.spearmanr(ties, other).statistic)
    assert "logit(' Mary') - logit(' John')" in repr(exact)
    positions = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, by="position", **kw).records()
    assert {"layer", "position", "token", "effect", "raw"} == set(positions[0])


@pytest.mark.parametrize(("args", "kwargs", "words"), [
    ((CLEAN, CLEAN + " the"), {"answer": " Mary"}, "clean is 14 tokens and corrupted 15 tokens"),
    ((CLEAN, CORRUPT), {"answer": " Marybeth"},
     "answer ' Marybeth' is 3 tokens for this tokenizer ([' Mary', 'b', 'eth'], ids [5335, 65, 2788])"),
    ((CLEAN, CORRUPT), {"answer": " Mary", "wrong": "Johnathan"}, "wrong 'Johnathan' is"),
    ((CLEAN, CORRUPT), {}, "give answer=' token'"),
    ((CLEAN, CORRUPT), {"answer": " Mary", "by": "neuron"}, "by must be one of ['head', 'layer', 'position']"),
    ((CLEAN, CORRUPT), {"answer": " Mary", "method": "fast"}, "method must be one of ['exact', 'gradient']"),
    ((CLEAN, CORRUPT), {"answer": " Mary", "kind": "cross"}, "kind must be one of ['self']"),
    ((CLEAN, CLEAN), {"answer": " Mary"}, "the clean and corrupted runs give the same metric"),
    ((CLEAN, CORRUPT), {"metric": lambda lg: float(lg[0]), "method": "gradient"}, "return a torch scalar"),
])
def test_bad_requests_get_one_line(gpt2_tokenizer, args, kwargs, words):
    with pytest.raises(TxMagicError) as err:
        tx_magic.patch(gpt2(), gpt2_tokenizer, *args, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_logit_metric_on_a_model_without_an_lm_head_says_what_to_do(minilm):
    with pytest.raises(OptionError, match=r"has no LM head, so there is no logit of ' Mary'.*leave answer"):
        tx_magic.patch(minilm.model, minilm.tokenizer, "The cat sat.", "The dog sat.", answer=" Mary")


def test_a_user_metric_sees_the_last_logits(gpt2_tokenizer):
    model = gpt2()
    a = gpt2_tokenizer(" Mary")["input_ids"][0]
    mine = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, metric=lambda lg: torch.log_softmax(lg, -1)[a])
    expected, *_ = reference_exact(model, gpt2_tokenizer, CLEAN, CORRUPT, {"answer": " Mary", "wrong": " John"}, "head")
    assert mine.metric == "<lambda>" and mine.raw.shape == (2, 4)
    grad = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, method="gradient",
                          metric=lambda lg: torch.log_softmax(lg, -1)[a])
    assert tx_magic.rank_correlation(mine, grad) > 0.5
    assert not np.allclose(mine.raw.ravel(), expected)  # a different metric than the default


def test_long_inputs_and_other_models_are_refused_in_one_line(gpt2_tokenizer, monkeypatch):
    with pytest.raises(NoAttentionError, match="transformers' attention interface"):
        tx_magic.patch(torch.nn.Linear(2, 2), lambda t: [1], "a", "b", answer=1)
    monkeypatch.setattr(patching, "plan_capture", lambda *_a, **_k: memory.Plan(memory.STREAMED, 0))
    with pytest.raises(OptionError, match=r"14 tokens is a long input .* at most \d+ tokens here\. Pass max_tokens="):
        tx_magic.patch(gpt2(), gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary")


def state(model) -> tuple:
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    forwards = [m for m in model.modules() if "forward" in m.__dict__]
    return (model.config._attn_implementation, model.training, hooks, forwards,
            [p.requires_grad for p in model.parameters()], [p.grad is None for p in model.parameters()])


@pytest.mark.parametrize("method", ["exact", "gradient"])
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_the_model_is_put_back_after_an_error_or_ctrl_c(gpt2_tokenizer, monkeypatch, method, error):
    model = llama(gpt2_tokenizer.vocab_size)
    tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", by="layer")
    model.train()
    model.model.layers[0].mlp.requires_grad_(False)  # mixed flags come back as they were
    before = state(model)
    seen = []
    # Exact: the run of L1H0, layer 0 skipped (4 runs x 2 layers came before); gradient: the one run's layer 1.
    at = 9 if method == "exact" else 2

    def explode(self, call, output):
        seen.append(call.layer)
        if len(seen) == at:
            raise error

    target = interventions.PatchOutputs if method == "exact" else interventions.Probe
    monkeypatch.setattr(target, "on_output", explode)
    with pytest.raises((type(error), TxMagicError)):
        tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", method=method, chunk_tokens=1)
    assert len(seen) == at and state(model) == before
    monkeypatch.undo()
    again = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", method=method)
    assert again.raw.shape == (2, 4) and state(model) == before


def test_by_layer_is_the_whole_projection_input_patched(gpt2_tokenizer):
    """by="layer" takes every head of the layer from the clean run: its attention block's output then is the
    clean one (the projection is linear)."""
    model = gpt2()
    kw = {"answer": " Mary", "wrong": " John"}
    layer = tx_magic.patch(model, gpt2_tokenizer, CLEAN, CORRUPT, by="layer", **kw)
    source = head_inputs(model, ids(gpt2_tokenizer, CLEAN))
    metric = reference_metric(model, gpt2_tokenizer, CLEAN, kw)
    for lay in range(2):
        whole = run(model, ids(gpt2_tokenizer, CORRUPT), lambda i, x, lay=lay: source[i] if i == lay else x)
        assert layer.raw[lay] == pytest.approx(float(metric(whole)), abs=1e-5)
