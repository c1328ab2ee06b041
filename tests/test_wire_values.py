"""The renderer's requests beyond the weights (value norms, queries and keys, flow) answered over the
one channel: replies decode to what the trace's own analyses give (themselves checked against the model's
weights in test_values.py and test_flow.py), and requests that cannot be answered get one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_llama

import tx_magic
from tx_magic import wire
from tx_magic.analysis import weighted_rows
from tx_magic.capturing import memory

TEXT = "The cat sat on the mat because it was warm."


def ask(trace, type_, **payload):
    reply, buffers = wire.reply_to(trace, {"type": type_, "id": "r1", "payload": payload})
    assert reply["id"] == "r1"
    return reply, buffers


@pytest.fixture(scope="module")
def llama_trace(gpt2_tokenizer):
    return tx_magic.capture(tiny_llama(len(gpt2_tokenizer)), gpt2_tokenizer, TEXT)


def test_meta_says_what_each_kind_can_answer(llama_trace, minilm):
    assert wire.encode_meta(llama_trace)["analyses"] == {"self": ["value", "qk", "flow"]}
    arrays = tx_magic.show(np.full((1, 1, 2, 2), 0.5, np.float32), ["a", "b"]).trace
    assert "analyses" not in wire.encode_meta(arrays)
    from conftest import tiny_bart

    bart = tx_magic.capture(tiny_bart(minilm.tokenizer.vocab_size, 101), minilm.tokenizer, "a b", target="c d")
    assert wire.encode_meta(bart)["analyses"] == {
        "encoder": ["value", "qk", "flow"], "decoder": ["value", "qk", "flow"], "cross": ["value", "qk"]}


def test_value_norms_reply(llama_trace):
    reply, (norms, totals, thumbs) = ask(llama_trace, wire.REQUEST_VALUE_NORMS, kind="self")
    c = reply["content"]
    layers, heads, q, k = llama_trace.shape()
    assert (c["layers"], c["heads"], c["queries"], c["keys"]) == (layers, heads, q, k)
    n = np.frombuffer(norms, "<f4").reshape(layers, heads, k)
    z = np.frombuffer(totals, "<f4").reshape(layers, heads, q)
    np.testing.assert_array_equal(n, llama_trace.value_norms(per_key=True))
    att = llama_trace.attention().astype(np.float64)
    weighted = weighted_rows(att, n)
    np.testing.assert_allclose(att * n[:, :, None, :] / z[..., None], weighted, atol=1e-6)  # any cell: a n / Z
    size = c["thumbnail_size"]
    t = np.frombuffer(thumbs, np.uint8).reshape(layers, heads, size, size)
    tiles = np.array_split(np.arange(q), size)
    top = np.array([[[[weighted[at, h][np.ix_(r, cc)].max() for cc in tiles] for r in tiles] for h in range(heads)]
                    for at in range(layers)])
    np.testing.assert_array_equal(t, np.rint(top * 255).astype(np.uint8))


def test_queries_keys_reply(llama_trace):
    reply, buffers = ask(llama_trace, wire.REQUEST_QUERIES_KEYS, kind="self", layer=1, query=4)
    c = reply["content"]
    assert c["rotary"] and c["groups"] == [0, 0, 1, 1] and c["kv_heads"] == 2 and len(buffers) == 4
    pair = llama_trace.queries_keys("self", 1)
    h, k, d = pair.k.shape
    q, keys, uq, uk = (np.frombuffer(b, "<f4") for b in buffers)
    np.testing.assert_array_equal(q.reshape(h, d), pair.q[:, 4])
    np.testing.assert_array_equal(keys.reshape(2, k, d)[c["groups"]], pair.k)
    np.testing.assert_array_equal(uq.reshape(h, d), pair.unrotated[0][:, 4])
    np.testing.assert_array_equal(uk.reshape(2, k, d)[c["groups"]], pair.unrotated[1])
    assert c["scale"] == pytest.approx(pair.scale)


def test_flow_reply(llama_trace):
    reply, buffers = ask(llama_trace, wire.REQUEST_FLOW, kind="self", token=3, threshold=0.04)
    assert buffers == [] and reply["content"]["layers"] == 2
    got = [(int(a), wire.FLOW_EDGE_TYPES[int(b)], int(c), int(d), int(e), w) for a, b, c, d, e, w in
           reply["content"]["edges"]]
    expected = llama_trace.flow(token=3, threshold=0.04)
    assert [g[:5] for g in got] == [(r.layer, r.type, r.head, r.source, r.target) for r in expected.itertuples()]
    np.testing.assert_allclose([g[5] for g in got], expected.weight, atol=1e-6)


@pytest.mark.parametrize(("type_", "payload", "words"), [
    (wire.REQUEST_FLOW, {"kind": "self", "token": 3, "threshold": 0.0}, "threshold must be"),
    (wire.REQUEST_FLOW, {"kind": "self", "token": 99, "threshold": 0.1}, "token must be"),
    (wire.REQUEST_QUERIES_KEYS, {"kind": "self", "layer": 5, "query": 0}, "layer must be"),
    (wire.REQUEST_QUERIES_KEYS, {"kind": "self", "layer": 0, "query": -2}, "query must be"),
    (wire.REQUEST_VALUE_NORMS, {"kind": "cross"}, "kind must be one of"),
])
def test_requests_it_cannot_answer_say_why(llama_trace, type_, payload, words):
    reply, _ = ask(llama_trace, type_, **payload)
    assert reply["type"] == wire.REPLY_ERROR and words in reply["message"]


def test_no_model_or_a_long_input_say_what_to_do(monkeypatch, gpt2_tokenizer):
    arrays = tx_magic.show(np.full((1, 1, 2, 2), 0.5, np.float32), ["a", "b"]).trace
    reply, _ = ask(arrays, wire.REQUEST_VALUE_NORMS, kind="self")
    assert reply["type"] == wire.REPLY_ERROR and "capture a transformers model" in reply["message"]
    monkeypatch.setattr(memory, "FULL_LIMIT", 1)
    long = tx_magic.capture(tiny_llama(len(gpt2_tokenizer)), gpt2_tokenizer, TEXT)
    assert wire.encode_meta(long)["analyses"] == {"self": ["qk"]}
    reply, _ = ask(long, wire.REQUEST_VALUE_NORMS, kind="self")
    assert reply["type"] == wire.REPLY_ERROR and "max_tokens" in reply["message"]
    reply, buffers = ask(long, wire.REQUEST_QUERIES_KEYS, kind="self", layer=0, query=2)
    assert reply["type"] == wire.REPLY and not reply["content"]["rotary"] and len(buffers) == 2
