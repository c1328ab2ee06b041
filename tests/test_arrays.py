"""tx_magic.show(attentions, tokens): arrays from any framework, validated (tx_magic.arrays)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tx_magic
from tx_magic import Trace
from tx_magic.capturing.arrays import AttentionArrayError, as_layers, to_numpy, trace_from_arrays


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


RNG = np.random.default_rng(0)
ATT = softmax(RNG.normal(size=(2, 3, 4, 4))).astype(np.float32)
TOKENS = ["the", "cat", "sat", "."]


class NumpyMethodOnly:
    """An array readable only through a `.numpy()` method (tests/test_tensorflow.py has real TensorFlow tensors)."""

    def __init__(self, arr):
        self._arr = arr

    def numpy(self):
        return self._arr


def test_every_framework_gives_the_same_trace():
    import jax.numpy as jnp

    given = {
        "numpy": ATT,
        "torch": torch.from_numpy(ATT),
        "torch bfloat16 with grad": torch.from_numpy(ATT).to(torch.bfloat16).requires_grad_(),
        "jax": jnp.asarray(ATT),
        ".numpy()": NumpyMethodOnly(ATT),
        "nested lists": ATT.tolist(),
    }
    for what, value in given.items():
        trace = trace_from_arrays(value, TOKENS)
        tol = 1e-2 if "bfloat16" in what else 0
        np.testing.assert_allclose(trace.attention(), ATT, atol=tol, err_msg=what)
        assert trace.attention().dtype == np.float32
        assert list(trace.sequences["input"]) == TOKENS


def test_shapes_one_layer_one_head_a_list_per_layer_and_hf_style_batches():
    assert as_layers(ATT[0]).shape == (1, 3, 4, 4)
    assert as_layers(ATT[0, 0]).shape == (1, 1, 4, 4)
    per_layer = [torch.from_numpy(ATT[i])[None] for i in range(2)]  # transformers: (1, heads, q, k) per layer
    np.testing.assert_array_equal(as_layers(tuple(per_layer)), ATT)
    np.testing.assert_array_equal(as_layers([ATT[0], ATT[1]]), ATT)
    np.testing.assert_array_equal(as_layers(ATT[:, None]), ATT)  # (layers, 1, heads, q, k)
    with pytest.raises(AttentionArrayError, match="differ in shape"):
        as_layers([ATT[0], ATT[1, :2]])
    with pytest.raises(AttentionArrayError, match=r"shape \(4,\)"):
        as_layers(np.ones(4))


def test_shape_against_tokens_is_checked_with_a_clear_message():
    with pytest.raises(AttentionArrayError, match="3 input tokens but the attention has 4 positions"):
        trace_from_arrays(ATT, TOKENS[:3])
    with pytest.raises(AttentionArrayError, match="one string"):
        trace_from_arrays(ATT, "the cat sat .")
    trace = trace_from_arrays(ATT)  # no tokens: positions numbered
    assert list(trace.sequences["input"]) == ["0", "1", "2", "3"]


def test_not_numbers_are_refused():
    with pytest.raises(AttentionArrayError, match="numbers"):
        trace_from_arrays(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TypeError, match="numpy, torch, JAX"):
        to_numpy(object())


def test_nan_negative_and_rows_not_summing_to_one_warn_but_show():
    att = ATT.copy()
    att[1, 2, 3, 0] = np.nan
    att[0, 1, 2, 1] = -0.5
    trace = trace_from_arrays(att, TOKENS)
    text = " | ".join(trace.warnings)
    assert ("1 self attention weights are NaN or infinite (shown as masked), "
            "the first at layer 1, head 2, query 3, key 0") in text
    assert "negative (the first at layer 0, head 1, query 2, key 1: -0.5)" in text
    assert "rows do not sum to 1 (layer 0, head 1, query 2" in text
    assert np.isnan(trace.attention()[1, 2, 3, 0])  # kept as given
    clean = trace_from_arrays(ATT, TOKENS)
    assert clean.warnings == []


def test_dict_per_kind_with_tokens_per_sequence():
    src, tgt = ["a", "b", "c", "d", "e"], ["x", "y", "z"]
    enc = softmax(RNG.normal(size=(2, 2, 5, 5)))
    dec = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    cross = softmax(RNG.normal(size=(2, 2, 3, 5)))
    trace = trace_from_arrays({"encoder": enc, "decoder": np.broadcast_to(dec, (2, 2, 3, 3)), "cross": cross},
                              {"source": src, "target": tgt})
    assert trace.kinds == ("encoder", "decoder", "cross")
    assert trace.tokens("cross") == (trace.sequences["target"], trace.sequences["source"])
    assert trace.mask("decoder").tolist() == np.tril(np.ones((3, 3), bool)).tolist()  # causal found
    with pytest.raises(AttentionArrayError, match="needs target tokens"):
        trace_from_arrays({"cross": cross}, {"source": src})
    with pytest.raises(AttentionArrayError, match="Unknown attention kind 'decoded'"):
        trace_from_arrays({"decoded": cross}, {"source": src})
    with pytest.raises(AttentionArrayError, match="5 key positions but another kind has 4"):
        trace_from_arrays({"encoder": enc[..., :4, :4], "cross": cross}, {"source": src[:4], "target": tgt})


def test_show_takes_arrays_and_still_takes_a_trace():
    import jax.numpy as jnp

    w = tx_magic.show(jnp.asarray(ATT), TOKENS, layer=1)
    assert isinstance(w.trace, Trace) and w.layer == 1
    assert w._meta["sequences"]["input"]["text"] == TOKENS
    again = tx_magic.show(w.trace)
    assert again.trace is w.trace
    bad = ATT * 2
    with pytest.warns(UserWarning, match="do not sum to 1"):
        tx_magic.show(bad, TOKENS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx_magic.show(torch.from_numpy(ATT), TOKENS)  # clean weights: no warning
