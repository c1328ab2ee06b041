"""`show()` of real TensorFlow tensors (tensorflow-cpu from the test extra): an eager tensor, and the scores of
a Keras `MultiHeadAttention(..., return_attention_scores=True)`, checked against softmax(QK^T/sqrt(d))
recomputed in numpy from the layer's own weights."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

import tx_magic

TOKENS = ["the", "cat", "sat", "on", "the", "mat"]


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_eager_tensors_of_every_shape_show_as_numpy_does():
    rng = np.random.default_rng(0)
    att = softmax(rng.normal(size=(2, 3, 6, 6))).astype(np.float32)
    for value in (tf.constant(att), tf.constant(att, dtype=tf.float16), [tf.constant(a[None]) for a in att]):
        trace = tx_magic.show(value, TOKENS).trace
        tol = 1e-3 if getattr(value, "dtype", None) == tf.float16 else 0
        np.testing.assert_allclose(trace.attention(), att, atol=tol)
        assert trace.attention().dtype == np.float32


def test_keras_multi_head_attention_scores_equal_the_layer_s_own_computation():
    tf.keras.utils.set_random_seed(0)
    heads, key_dim, n = 3, 4, len(TOKENS)
    mha = tf.keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim)
    x = tf.random.normal((1, n, 8))
    causal = np.tril(np.ones((n, n), dtype=bool))
    _, scores = mha(x, x, return_attention_scores=True, attention_mask=tf.constant(causal[None]))
    assert tuple(scores.shape) == (1, heads, n, n)
    trace = tx_magic.show(scores[0], TOKENS).trace
    np.testing.assert_array_equal(trace.attention()[0], scores[0].numpy())

    wq, bq = (w.numpy() for w in mha._query_dense.weights)  # (d_model, heads, key_dim), (heads, key_dim)
    wk, bk = (w.numpy() for w in mha._key_dense.weights)
    xs = x[0].numpy()
    q = np.einsum("nd,dhk->hnk", xs, wq) + bq[:, None]
    k = np.einsum("nd,dhk->hnk", xs, wk) + bk[:, None]
    logits = np.where(causal, q @ k.transpose(0, 2, 1) / np.sqrt(key_dim), -np.inf)
    np.testing.assert_allclose(trace.attention()[0], softmax(logits), atol=1e-5)
    assert "self" in trace.masks  # zeros above the diagonal: drawn as masked


def test_a_non_probability_tensor_is_shown_with_a_warning():
    with pytest.warns(UserWarning, match="negative"):
        tx_magic.show(tf.constant([[0.5, 0.5], [-0.2, 1.2]]), ["a", "b"])
