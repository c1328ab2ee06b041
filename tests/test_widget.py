"""The widget's traits, and attention crossing the wire as binary blocks, eagerly or on request."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

import tx_magic
from tx_magic import wire


@pytest.fixture(scope="module")
def trace(minilm):
    return tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat on the mat.")


def test_meta_describes_tokens_and_kinds_without_values(trace):
    meta = wire.encode_meta(trace)
    assert meta["version"] == wire.WIRE_VERSION
    assert tuple(meta) == wire.META_KEYS
    assert meta["sequences"]["input"]["text"] == list(trace.tokens()[0])
    assert meta["sequences"]["input"]["special"][0] is True
    (kind,) = meta["kinds"]
    assert tuple(kind) == wire.KIND_KEYS
    assert (kind["name"], kind["layers"], kind["heads"], kind["mask"]) == ("self", 6, 12, wire.MASK_NONE)


def test_all_layers_travel_as_exact_float32_bytes_when_small(trace):
    w = tx_magic.show(trace)
    assert [b["layer"] for b in w._layers] == list(range(6))
    for block in w._layers:
        assert tuple(block) == wire.BLOCK_KEYS
        assert isinstance(block["data"], bytes)
        np.testing.assert_array_equal(wire.decode_layer(block), trace.attention()[block["layer"]])


def test_over_budget_only_the_first_layer_is_eager_and_the_rest_is_served(trace):
    w = tx_magic.AttentionWidget(trace, eager_budget=1)
    assert [b["layer"] for b in w._layers] == [0]
    sent = []
    w.send = lambda content, buffers=None: sent.append((content, buffers))
    w._on_custom_msg(w, {"type": wire.REQUEST_LAYER, "kind": "self", "layer": 4}, [])
    content, buffers = sent[-1]
    assert content["type"] == wire.REPLY_LAYER and content["layer"] == 4 and "data" not in content
    np.testing.assert_array_equal(wire.decode_layer({**content, "data": buffers[0]}), trace.attention()[4])
    w._on_custom_msg(w, {"type": wire.REQUEST_LAYER, "kind": "self", "layer": 99}, [])
    assert sent[-1][0]["type"] == wire.REPLY_ERROR and "0..5" in sent[-1][0]["message"]
    w._on_custom_msg(w, {"type": "something else"}, [])
    assert len(sent) == 2


def test_selection_traits_sync_and_validate(trace):
    w = tx_magic.show(trace, layer=2, head=7)
    state = w.get_state()
    for name in ("kind", "layer", "heads", "head", "token"):
        assert name in state
    assert (state["layer"], state["head"], state["token"]) == (2, 7, -1)
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="token")
    w.token = 3
    assert seen == [3]
    with pytest.raises(traitlets.TraitError, match="0..5"):
        w.layer = 6


def test_causal_and_explicit_masks_on_the_wire():
    seq = tx_magic.Tokens(text=("a", "b", "c"))
    att = np.full((1, 1, 3, 3), 1 / 3, dtype=np.float32)
    causal = tx_magic.Trace("m", {"input": seq}, {"self": att}, masks={"self": np.tril(np.ones((3, 3), bool))})
    assert wire.encode_meta(causal)["kinds"][0]["mask"] == wire.MASK_CAUSAL
    explicit_mask = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=bool)
    explicit = tx_magic.Trace("m", {"input": seq}, {"self": att}, masks={"self": explicit_mask})
    kind = wire.encode_meta(explicit)["kinds"][0]
    assert kind["mask"] == wire.MASK_EXPLICIT
    assert np.frombuffer(kind["mask_data"], np.uint8).reshape(3, 3).tolist() == explicit_mask.astype(int).tolist()


def test_tokens_with_markup_are_plain_strings_on_the_wire(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "<img src=x onerror=alert(1)>")
    text = wire.encode_meta(trace)["sequences"]["input"]["text"]
    assert "<" in text and "".join(text[2:4]) == "img"  # passed as data; the renderer sets textContent only


def test_switching_kind_keeps_layer_and_heads_in_range(minilm):
    from conftest import tiny_bart

    tok = minilm.tokenizer
    trace = tx_magic.capture(tiny_bart(tok.vocab_size, tok.cls_token_id), tok, "a source", target="a target")
    w = tx_magic.show(trace, kind="decoder", layer=2, head=1)  # decoder: 3 layers x 2 heads
    w.kind = "encoder"  # encoder: 2 layers x 4 heads
    assert w.layer == 1 and w.head == 1
    w.heads = [0, 1, 2, 3]
    w.head = 3
    w.kind = "cross"
    assert w.heads == [0, 1] and w.head == -1
    with pytest.raises(traitlets.TraitError, match="kind must be one of"):
        w.kind = "self"
