"""Inside the model: hidden-state norms and cosines, the logit lens and next-token logits,
checked against recomputations from the model's own outputs, on the wire and in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2, tiny_llama

import tx_magic
from tx_magic import wire
from tx_magic.analysis.hidden import hidden_stats
from tx_magic.analysis.lens import logit_lens
from tx_magic.capturing.readout import find_unembedding

TEXT = "The cat sat on the mat because it was tired"


def reference(model, trace):
    ids = torch.tensor([list(trace.sequences["input"].ids)])
    with torch.no_grad():
        return model(ids, output_hidden_states=True)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def causal(request, gpt2_tokenizer):
    model = tiny_gpt2() if request.param == "gpt2" else tiny_llama(len(gpt2_tokenizer))
    trace = tx_magic.capture(model, gpt2_tokenizer, TEXT)
    return model, gpt2_tokenizer, trace


def test_hidden_norms_and_cosines_recomputed_from_output_hidden_states(causal):
    model, _, trace = causal
    hs = [h[0].double().numpy() for h in reference(model, trace).hidden_states]
    assert trace.hidden.norms.shape == (len(hs), len(trace.sequences["input"]))
    for layer, h in enumerate(hs):
        np.testing.assert_allclose(trace.hidden.norms[layer], np.linalg.norm(h, axis=-1), rtol=1e-5)
        if layer == 0:
            assert np.isnan(trace.hidden.cosines[0]).all()
            continue
        prev = hs[layer - 1]
        cos = (h * prev).sum(-1) / (np.linalg.norm(h, axis=-1) * np.linalg.norm(prev, axis=-1))
        np.testing.assert_allclose(trace.hidden.cosines[layer], cos, rtol=1e-5, atol=1e-6)
    assert (trace.hidden.cosines[1:] < 0.9999).any()  # the layers really change the vectors
    assert trace.hidden.last_normed  # transformers returns GPT-2's and Llama's last hidden state normed


def test_logit_lens_last_layer_is_the_models_own_top_k(causal):
    model, _, trace = causal
    out = reference(model, trace)
    top = out.logits[0].softmax(-1).topk(5, dim=-1)
    lens = trace.lens.top()
    assert lens.positions == tuple(range(len(trace.sequences["input"])))
    np.testing.assert_array_equal(lens.ids[-1], top.indices.numpy())
    np.testing.assert_allclose(lens.probs[-1], top.values.numpy(), rtol=1e-4, atol=1e-6)


def test_logit_lens_middle_layers_go_through_the_final_norm(causal):
    model, _, trace = causal
    out = reference(model, trace)
    unembed = find_unembedding(model)
    with torch.no_grad():
        logits = model.get_output_embeddings()(unembed.norm(out.hidden_states[1][0]))
    top = logits.softmax(-1).topk(5, dim=-1)
    lens = trace.lens.top()
    np.testing.assert_array_equal(lens.ids[1], top.indices.numpy())
    assert not np.array_equal(lens.ids[1], lens.ids[-1])


def test_logit_lens_in_small_chunks_equals_one_chunk(causal):
    model, _, trace = causal
    hidden = reference(model, trace).hidden_states
    unembed = find_unembedding(model)
    whole = logit_lens(hidden, unembed, last_normed=True).top()
    # 2 positions per chunk: the chunk never holds the whole (positions x vocab) matrix.
    chunked = logit_lens(hidden, unembed, last_normed=True, chunk_values=2 * unembed.vocab_size).top()
    np.testing.assert_array_equal(whole.ids, chunked.ids)
    np.testing.assert_allclose(whole.probs, chunked.probs, rtol=1e-6)


def test_logit_lens_is_computed_only_for_the_positions_asked_and_cached(causal):
    model, _, trace = causal
    lens = logit_lens(reference(model, trace).hidden_states, find_unembedding(model), last_normed=True)
    n = len(trace.sequences["input"])
    assert lens.hidden.shape == (lens.layers + 1, n, model.config.hidden_size)
    assert lens.hidden.dtype == np.float32 and lens.nbytes == lens.hidden.size * 4
    calls = []
    compute = lens._compute
    lens._compute = lambda positions: calls.append(list(positions)) or compute(positions)
    some = lens.top([n - 1, 2])
    assert calls == [[2, n - 1]] and some.positions == (n - 1, 2)
    again = lens.top([2, -1, 3])  # 2 and the last are cached: only 3 is computed
    assert calls == [[2, n - 1], [3]] and again.positions == (2, n - 1, 3)
    assert lens.computed == (2, 3, n - 1)
    np.testing.assert_array_equal(again.ids[:, :2], some.ids[:, ::-1])
    whole = trace.lens.top()
    np.testing.assert_array_equal(again.ids, whole.ids[:, [2, n - 1, 3]])
    np.testing.assert_allclose(again.probs, whole.probs[:, [2, n - 1, 3]], rtol=1e-5)
    with pytest.raises(IndexError, match="position must be in"):
        lens.top([n])


def test_capture_computes_no_lens_position(gpt2_tokenizer, monkeypatch):
    from tx_magic.analysis.lens import LogitLens

    computed = []
    monkeypatch.setattr(LogitLens, "_compute", lambda self, positions: computed.append(positions))
    trace = tx_magic.capture(tiny_gpt2(), gpt2_tokenizer, TEXT)
    tx_magic.show(trace).get_state()
    assert trace.lens is not None and computed == [] and trace.lens.computed == ()


def test_next_token_logits_exact_at_the_last_and_on_request_at_any_position(causal):
    model, _, trace = causal
    logits = reference(model, trace).logits[0].numpy()
    np.testing.assert_allclose(trace.logits.last, logits[-1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(trace.logits.at(2), logits[2], rtol=1e-4, atol=1e-4)
    with pytest.raises(IndexError, match="position must be in"):
        trace.logits.at(99)


def test_vocab_strings_show_spaces_as_spaces(causal):
    _, tok, trace = causal
    assert len(trace.vocab) == trace.logits.vocab_size
    assert trace.vocab[tok.convert_tokens_to_ids("Ġcat")] == " cat"


def test_byte_level_vocab_strings_equal_decoding_every_token(gpt2_tokenizer):
    from tx_magic.capturing import vocab as lens

    assert lens._is_byte_level(gpt2_tokenizer)
    size = len(gpt2_tokenizer)
    fast = lens._vocab_strings(gpt2_tokenizer, size + 2)
    raw = gpt2_tokenizer.convert_ids_to_tokens(list(range(size)))
    assert fast[:size] == tuple(lens._decoded_strings(gpt2_tokenizer, raw, range(size)))  # all 50257 tokens
    assert fast[size:] == (f"<id {size}>", f"<id {size + 1}>")
    assert fast[gpt2_tokenizer.convert_tokens_to_ids("Ċ")] == "\n" and fast[50256] == "<|endoftext|>"
    (accented,) = gpt2_tokenizer.encode(" é")  # one token of three bytes: a space and a two-byte character
    assert fast[accented] == " é"
    partial = gpt2_tokenizer.convert_tokens_to_ids("Ã")  # the first byte of a two-byte character alone
    assert fast[partial] == "Ã"


def test_vocab_strings_fall_back_to_decoding_when_the_sample_disagrees(gpt2_tokenizer, monkeypatch):
    from tx_magic.capturing import vocab as lens

    monkeypatch.setattr(lens, "_bytes_to_unicode", lambda: {b: chr(0x100 + b) for b in range(256)})  # a wrong map
    strings = lens._vocab_strings(gpt2_tokenizer, len(gpt2_tokenizer))
    assert strings[gpt2_tokenizer.convert_tokens_to_ids("Ġcat")] == " cat"


def test_encoder_models_have_hidden_states_but_no_lens(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    assert trace.hidden.norms.shape == (7, len(trace.sequences["input"]))
    assert trace.lens is None and trace.logits is None
    assert not trace.hidden.last_normed
    internals = wire.encode_internals(trace)
    assert set(internals) == {"hidden"}


def test_wire_carries_internals_that_decode_back(causal):
    _, _, trace = causal
    enc = wire.encode_internals(trace)
    assert set(enc) == {"hidden", "lens", "logits", "vocab"}
    assert tuple(enc["hidden"]) == wire.keys_of(wire.Hidden) and tuple(enc["lens"]) == wire.keys_of(wire.LensInfo)
    assert enc["lens"] == {"layers": trace.lens.layers, "tokens": len(trace.sequences["input"]), "k": 5}
    rows, n = trace.hidden.norms.shape
    norms = np.frombuffer(enc["hidden"]["norms"], "<f4").reshape(rows, n)
    np.testing.assert_array_equal(norms, trace.hidden.norms)
    assert enc["hidden"]["last_normed"] is True
    last = np.frombuffer(enc["logits"]["data"], "<f4")
    assert enc["logits"]["position"] == n - 1
    np.testing.assert_array_equal(last, trace.logits.last)


def test_widget_answers_a_logits_request_and_refuses_a_bad_position(causal):
    _, _, trace = causal
    w = tx_magic.show(trace)
    assert w._internals["logits"]["position"] == len(trace.sequences["input"]) - 1
    sent = []
    w.send = lambda content, buffers=None: sent.append((content, buffers))
    w._on_custom_msg(w, {"type": wire.REQUEST_LOGITS, "id": "l3", "payload": {"position": 3}}, [])
    content, buffers = sent[-1]
    assert content.pop("kernel_ms") >= 0 and content == {"type": wire.REPLY, "id": "l3", "content": {"position": 3}}
    np.testing.assert_array_equal(np.frombuffer(buffers[0], "<f4"), trace.logits.at(3))
    w._on_custom_msg(w, {"type": wire.REQUEST_LOGITS, "id": "far", "payload": {"position": 500}}, [])
    assert sent[-1][0]["type"] == wire.REPLY_ERROR and "position must be in" in sent[-1][0]["message"]
    w._on_custom_msg(w, {"type": wire.REQUEST_LAYER, "id": "l", "payload": {"kind": "self", "layer": 0}}, [])
    assert sent[-1][0]["type"] == wire.REPLY and sent[-1][0]["id"] == "l"  # the same one handler answers every request


def test_widget_answers_a_lens_request_and_refuses_bad_ones(causal):
    _, _, trace = causal
    w = tx_magic.show(trace)
    sent = []
    w.send = lambda content, buffers=None: sent.append((content, buffers))
    w._on_custom_msg(w, {"type": wire.REQUEST_LENS, "id": "r1", "payload": {"positions": [4, 1]}}, [])
    content, buffers = sent[-1]
    assert content.pop("kernel_ms") >= 0
    assert content == {"type": wire.REPLY, "id": "r1", "content": {"positions": [4, 1], "k": 5}}
    assert tuple(content["content"]) == wire.keys_of(wire.LensReply)
    rows = trace.lens.layers + 1
    ids = np.frombuffer(buffers[0], "<i4").reshape(rows, 2, 5)
    probs = np.frombuffer(buffers[1], "<f4").reshape(rows, 2, 5)
    whole = trace.lens.top()
    np.testing.assert_array_equal(ids, whole.ids[:, [4, 1]])
    np.testing.assert_allclose(probs, whole.probs[:, [4, 1]], rtol=1e-6)
    n = len(trace.sequences["input"])
    for bad, message in [([n], "position must be in"), ([], "positions must be a list"),
                         (list(range(wire.MAX_LENS_POSITIONS + 1)), "positions must be a list"),
                         (["a"], "whole numbers"), ("3", "positions must be a list")]:
        w._on_custom_msg(w, {"type": wire.REQUEST_LENS, "id": "bad", "payload": {"positions": bad}}, [])
        assert sent[-1][0]["type"] == wire.REPLY_ERROR and sent[-1][0]["id"] == "bad"
        assert message in sent[-1][0]["message"] and sent[-1][1] == []


def test_a_lens_request_to_a_trace_without_a_lens_gets_an_error(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    reply, buffers = wire.reply_to(trace, {"type": wire.REQUEST_LENS, "id": "x", "payload": {"positions": [0]}})
    assert reply["type"] == wire.REPLY_ERROR and "no logit lens" in reply["message"] and buffers == []


def test_hidden_stats_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match="hidden state must be"):
        hidden_stats([np.zeros((2, 3, 4, 5))])


def test_smollm2_logit_lens_final_layer_says_paris(smollm2):
    trace = tx_magic.capture(smollm2.model, smollm2.tokenizer, "The capital of France is")
    lens = trace.lens.top([-1])
    assert lens.ids.shape == (31, 1, 5) and trace.lens.tokens == len(trace.sequences["input"])
    assert trace.vocab[lens.ids[-1, 0, 0]] == " Paris"
    assert lens.probs[-1, 0, 0] > 0.5
    assert trace.vocab[int(trace.logits.last.argmax())] == " Paris"
    # the embeddings row does not know yet
    assert trace.vocab[lens.ids[0, 0, 0]] != " Paris"


def test_smollm2_vocab_strings_equal_decoding_every_token(smollm2):
    from tx_magic.capturing import vocab as lens

    tok = smollm2.tokenizer
    size = len(tok)
    raw = tok.convert_ids_to_tokens(list(range(size)))
    assert lens._is_byte_level(tok)
    assert lens._vocab_strings(tok, size) == tuple(lens._decoded_strings(tok, raw, range(size)))


def test_sampling_fixture_checked_by_the_typescript_tests_is_what_transformers_computes_now():
    import json

    from make_sampling_fixture import FIXTURE, build_fixture

    assert FIXTURE.exists(), "run `python tests/make_sampling_fixture.py`"
    assert json.loads(FIXTURE.read_text()) == json.loads(json.dumps(build_fixture())), (
        "transformers' warpers changed: run `python tests/make_sampling_fixture.py` "
        "and make js/tests/sampling.test.ts pass"
    )
