"""Per-head statistics and head-type labels, on attention built to have each pattern."""

from __future__ import annotations

import numpy as np
import pytest

import tx_magic
from tx_magic.analysis import attention_rollout, head_stats, head_types, rollout, stats_records
from tx_magic.core.tokens import induction_targets

N = 12


def causal_uniform(n=N):
    mask = np.tril(np.ones((n, n)))
    return mask / mask.sum(-1, keepdims=True)


def one_hot_rows(cols, n=N):
    """Row q puts all weight on key cols[q]."""
    p = np.zeros((n, n))
    p[np.arange(n), cols] = 1.0
    return p


def heads(*patterns):
    return np.stack(patterns)[None].astype(np.float32)  # (1 layer, H, n, n)


PREVIOUS = one_hot_rows(np.maximum(np.arange(N) - 1, 0))
FIRST = one_hot_rows(np.zeros(N, dtype=int))
SELF = one_hot_rows(np.arange(N))
UNIFORM = causal_uniform()


def test_statistics_follow_the_annotated_transformer_definitions():
    p = np.array([[[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]]], dtype=np.float32)
    s = head_stats(p)
    rows = p[0, 0].astype(np.float64)
    entropy = -(rows * np.log(rows + 1e-10)).sum(-1).mean()
    assert s["entropy"][0, 0] == pytest.approx(entropy)
    assert s["max_weight"][0, 0] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert s["dispersion"][0, 0] == pytest.approx(1 - (0.5 + 0.5 + 1.0) / 3)
    assert s["first"][0, 0] == pytest.approx((0.2 + 1.0) / 2)       # rows 1.. only
    assert s["previous"][0, 0] == pytest.approx((0.2 + 0.0) / 2)
    assert s["self"][0, 0] == pytest.approx((0.5 + 0.3 + 0.0) / 3)
    assert s["distance"][0, 0] == pytest.approx((0.5 + (0.2 + 0.5) + 2.0) / 3)


def test_statistics_of_pure_patterns():
    s = head_stats(heads(PREVIOUS, FIRST, SELF, UNIFORM))
    np.testing.assert_allclose(s["previous"][0], [1, 1 / (N - 1), 0, np.mean([1 / (q + 1) for q in range(1, N)])])
    np.testing.assert_allclose(s["max_weight"][0, :3], 1.0)
    np.testing.assert_allclose(s["entropy"][0, :3], 0.0, atol=1e-8)
    assert s["entropy"][0, 3] > 1.0


def test_cross_attention_statistics_that_need_one_sequence_are_nan():
    p = np.full((1, 1, 3, 5), 0.2, dtype=np.float32)
    s = head_stats(p, same_sequence=False)
    assert np.isnan(s["distance"]).all() and np.isnan(s["previous"]).all() and np.isnan(s["self"]).all()
    assert s["max_weight"][0, 0] == pytest.approx(0.2)


def test_nan_weights_do_not_poison_statistics():
    p = heads(PREVIOUS).copy()
    p[0, 0, 3, 2] = np.nan
    assert np.isfinite(head_stats(p)["entropy"]).all()


def test_each_pattern_gets_its_label_and_noise_gets_none():
    rng = np.random.default_rng(0)
    noise = rng.dirichlet(np.full(N, 0.3), size=N) * np.tril(np.ones((N, N)))
    noise /= noise.sum(-1, keepdims=True)
    local = np.zeros((N, N))
    for q in range(N):
        keys = np.arange(max(0, q - 2), q + 1)
        local[q, keys] = 1 / len(keys)
    labels = head_types(heads(PREVIOUS, FIRST, SELF, UNIFORM, local, noise), np.tril(np.ones((N, N), bool)))
    assert labels[0].tolist() == ["previous", "first", "self", "broad", "local", ""]


def test_induction_needs_a_repeat_and_the_right_offset():
    ids = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9]
    pairs = induction_targets(ids)
    assert pairs == [(5, 1), (6, 2), (7, 3), (8, 4), (9, 5)]
    n = len(ids)
    p = causal_uniform(n).copy()
    for q, k in pairs:
        p[q] = 0
        p[q, k] = 1.0
    labels = head_types(heads(p), np.tril(np.ones((n, n), bool)), ids)
    assert labels[0, 0] == "induction"
    assert head_types(heads(p), np.tril(np.ones((n, n), bool)), list(range(n)))[0, 0] != "induction"


def test_labels_are_conservative_on_a_real_model(minilm):
    text = "The animal didn't cross the street because it was too tired, so it lay down."
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, text)
    records = stats_records(trace)
    assert len(records) == 6 * 12
    labelled = [r for r in records if r["type"]]
    assert len(labelled) <= len(records) / 2, "most heads of a real model should stay unlabelled"
    for r in records:
        assert 0 <= r["max_weight"] <= 1 and r["dispersion"] == pytest.approx(1 - r["max_weight"])
        assert r["type"] in ("", "induction", "previous", "first", "self", "local", "broad")


def test_trace_stats_returns_a_table(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "a short text")
    table = trace.stats()
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert {"layer", "head", "entropy", "max_weight", "dispersion", "distance", "first", "previous", "self",
            "type"} <= set(rows[0])


# -- rollout (Abnar & Zuidema 2020) ---------------------------------------------------------------

def test_rollout_by_hand():
    """Two layers, two heads, two tokens, worked out on paper."""
    att = np.array([
        [[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.1, 0.9]]],   # layer 0
        [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]],   # layer 1
    ], dtype=np.float32)
    # layer 0: mean [[1, 0], [0.3, 0.7]] -> 0.5 mean + 0.5 I = [[1, 0], [0.15, 0.85]] (rows sum to 1)
    a0 = np.array([[1.0, 0.0], [0.15, 0.85]])
    # layer 1: mean [[1, 0], [0.5, 0.5]] -> [[1, 0], [0.25, 0.75]]
    a1 = np.array([[1.0, 0.0], [0.25, 0.75]])
    out = attention_rollout(att)
    np.testing.assert_allclose(out[0], a0)
    np.testing.assert_allclose(out[1], a1 @ a0)
    np.testing.assert_allclose(out[1], [[1.0, 0.0], [0.3625, 0.6375]])
    np.testing.assert_allclose(out.sum(-1), 1.0)


def test_rollout_of_chosen_heads_renormalises_rows():
    att = np.zeros((1, 2, 3, 3), dtype=np.float32)
    att[0, 0] = np.eye(3)
    att[0, 1, :, 0] = 1.0
    only_sink = attention_rollout(att, heads=[1])[0]
    np.testing.assert_allclose(only_sink, [[1.0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]])
    padded = att.copy()
    padded[0, :, 2] = 0.0  # a masked (padding) query row: only the residual is left
    np.testing.assert_allclose(attention_rollout(padded)[0, 2], [0, 0, 1])
    with pytest.raises(ValueError, match="subset"):
        attention_rollout(att, heads=[2])


def test_rollout_is_for_self_attention(minilm):
    from conftest import tiny_bart

    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    out = rollout(trace)
    assert out.shape == (6, len(trace.tokens()[0]), len(trace.tokens()[0]))
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)
    tok = minilm.tokenizer
    seq2seq = tx_magic.capture(tiny_bart(tok.vocab_size, tok.cls_token_id), tok, "a source", target="a target")
    assert rollout(seq2seq, "decoder").shape[0] == 3
    with pytest.raises(ValueError, match="self-attention"):
        rollout(seq2seq, "cross")


def test_a_partial_sink_and_a_short_input_get_no_label():
    partial_sink = 0.7 * FIRST + 0.3 * UNIFORM  # leans on token 0, like most heads of causal LMs
    assert head_types(heads(partial_sink), np.tril(np.ones((N, N), bool)))[0, 0] == ""
    short = 5
    assert head_types(heads(one_hot_rows(np.arange(short), short)))[0, 0] == ""
    assert head_types(heads(SELF))[0, 0] == "self"
