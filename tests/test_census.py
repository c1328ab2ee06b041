"""The pattern library and the census: scores equal the per-trace statistics they aggregate and an
independent computation from the definitions; the census finds exactly the patterns wired into a small
model, and none in the same model with random weights; user patterns and probes join the library."""

from __future__ import annotations

import numpy as np
import pytest
from wired import EXPECTED, WordIds, unwired, wired

import tx_magic
from tx_magic.analysis import census, library, pattern_scores, probes
from tx_magic.analysis.labels import MIN_REPEATS
from tx_magic.core.errors import OptionError, TxMagicError

SMALL = {"repeated": 3, "duplicate": 3, "natural": 4, "long": 1}


@pytest.fixture(scope="module")
def wired_census():
    return census(wired(), WordIds(), counts=SMALL, progress=False)


def test_the_census_finds_exactly_the_wired_patterns(wired_census):
    c = wired_census
    assert c.shape == (2, 4)
    found = {(layer, head): str(c.labels[layer, head]) for layer in range(2) for head in range(4)}
    assert found == EXPECTED
    ev = c.evidence(1, 0)
    scores = c.scores("induction")[:, 1, 0]
    assert ev.pattern == "induction" and ev.scored == np.isfinite(scores).sum() >= 6  # repeated and duplicate probes
    assert ev.shown == (scores[np.isfinite(scores)] >= 0.4).sum() >= ev.scored / 2
    assert ev.mean == pytest.approx(np.nanmean(scores))
    assert str(ev).startswith("induction 0.") and f"on {ev.shown} of {ev.scored} inputs" in str(ev)
    table = c.table()
    assert list(table.columns) == ["layer", "head", *c.patterns, "label", "evidence"]
    assert table.loc[(table["layer"] == 0) & (table["head"] == 0), "label"].item() == "previous"
    assert c.heads("duplicate") == [(1, 1)]


def test_a_model_without_patterns_gets_no_label():
    c = census(unwired(), WordIds(), counts=SMALL, progress=False)
    assert set(c.labels.ravel()) == {""}, c.table()[["layer", "head", "label", "evidence"]]


def brute_force(att: np.ndarray, ids: list[int]) -> dict[str, np.ndarray]:
    """previous, first, induction and duplicate written from their definitions, one head and row at a time."""
    layers, heads, n, _ = att.shape
    out = {name: np.full((layers, heads), np.nan) for name in ("previous", "first", "induction", "duplicate")}
    for layer in range(layers):
        for head in range(heads):
            p = att[layer, head].astype(np.float64)
            out["previous"][layer, head] = np.mean([p[q, q - 1] for q in range(1, n)])
            out["first"][layer, head] = np.mean([p[q, 0] for q in range(1, n)])
            induction, duplicate = [], []
            for q in range(n):
                before = [k for k in range(q) if ids[k] == ids[q]]
                if before and max(before) <= q - 2:  # the token after its latest earlier occurrence (not q itself)
                    induction.append(p[q, max(before) + 1])
                earlier = [k for k in before if k <= q - 2]  # earlier occurrences, the previous token left out
                if earlier:
                    duplicate.append(sum(p[q, k] for k in earlier))
            if len(induction) >= MIN_REPEATS:
                out["induction"][layer, head] = np.mean(induction)
            if len(duplicate) >= MIN_REPEATS:
                out["duplicate"][layer, head] = np.mean(duplicate)
    return out


def test_census_scores_are_the_per_trace_statistics_and_the_definitions(wired_census):
    c = wired_census
    for i in range(len(c.inputs)):
        trace = c.trace(i)  # captured again for most inputs
        stats = trace.stats()
        for name in ("previous", "first", "self", "entropy"):
            if name in c.patterns:
                table = stats.pivot(index="layer", columns="head", values=name).to_numpy()
                np.testing.assert_allclose(c.scores(name)[i], table, rtol=0, atol=1e-12)
        by_hand = brute_force(trace.attention(), list(trace.tokens()[0].ids))
        for name, expected in by_hand.items():
            np.testing.assert_allclose(c.scores(name)[i], expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    mean = np.nanmean(c.scores("previous"), axis=0)
    np.testing.assert_allclose(c.mean("previous"), mean)
    low, high = c.interval("induction")
    finite = c.scores("induction")[:, 1, 0]
    finite = finite[np.isfinite(finite)]
    assert low[1, 0] == pytest.approx(np.percentile(finite, 2.5))
    assert high[1, 0] == pytest.approx(np.percentile(finite, 97.5))
    assert c.shown("previous")[0, 0] == len(c.inputs)


def test_best_inputs_are_those_with_the_highest_score(wired_census):
    c = wired_census
    best = c.best_inputs(1, 0, n=3)
    scores = c.scores("induction")[:, 1, 0]
    assert [c.inputs[i].probe for i in best] == ["repeated"] * 3
    assert list(scores[best]) == sorted(scores[np.isfinite(scores)], reverse=True)[:3]


def test_monotonic_alignment_is_found_on_cross_attention():
    n = 10
    diagonal = np.eye(n, dtype=np.float32)[None, None] * 0.9 + 0.1 / n
    sink = np.zeros((1, 1, n, n), dtype=np.float32)
    sink[..., -1] = 1.0
    att = np.concatenate([diagonal, sink, np.full((1, 1, n, n), 1.0 / n, dtype=np.float32)], axis=1)
    trace = tx_magic.Trace("t", {"source": tx_magic.Tokens(tuple("abcdefghij")),
                                 "target": tx_magic.Tokens(tuple("ABCDEFGHIJ"))},
                           {"cross": att / att.sum(-1, keepdims=True)})
    scores = pattern_scores(trace, "cross")
    assert list(scores) == [p.name for p in library(cross=True)]
    assert scores["monotonic"][0, 0] == pytest.approx(0.91, abs=1e-6)  # rank correlation 1 x mean max 0.91
    assert scores["monotonic"][0, 1] == 0.0  # every row on one source token: no alignment
    assert scores["monotonic"][0, 2] < 0.2


def test_a_registered_pattern_and_its_probe_join_the_census():
    def last_token(att: np.ndarray, tokens: tx_magic.Tokens) -> float:
        return float(att[1:, -1].mean()) if len(tokens) > 1 else float("nan")

    def probe(tokenizer, rng):
        return [" ".join(f"w{int(i)}" for i in rng.integers(0, 50, 12)), list(range(20))]

    tx_magic.register_pattern("last", last_token, probe, threshold=0.5)
    try:
        assert [p.name for p in library(cross=False)][-3:] == ["last", "local", "broad"]
        c = census(wired(), WordIds(), probes=["natural"], counts={"natural": 2}, progress=False)
        assert "last" in c.patterns
        assert [i.probe for i in c.inputs] == ["natural", "natural", "last", "last"]
        trace = c.trace(0)
        att = trace.attention()
        np.testing.assert_allclose(c.scores("last")[0], att[:, :, 1:, -1].mean(-1), atol=1e-7)
    finally:
        tx_magic.analysis.unregister_pattern("last")
    assert "last" not in [p.name for p in library()]


def test_bad_patterns_and_inputs_get_one_clear_message():
    with pytest.raises(OptionError, match="built-in"):
        tx_magic.register_pattern("previous", lambda a, t: 0.0)
    with pytest.raises(OptionError, match="function"):
        tx_magic.register_pattern("mine", 3)
    with pytest.raises(OptionError, match="nothing to run"):
        census(wired(), WordIds(), probes=False, progress=False)
    with pytest.raises(OptionError, match="unknown probe"):
        census(wired(), WordIds(), probes=["nope"], progress=False)
    with pytest.raises(TxMagicError, match=r"no input could be scored.*under the 8"):
        census(wired(), WordIds(), ["a b c"], probes=False, progress=False)
    tx_magic.register_pattern("broken", lambda a, t: 1 / 0)
    try:
        with pytest.raises(TxMagicError, match="pattern 'broken' failed on layer 0, head 0: ZeroDivisionError"):
            census(wired(), WordIds(), probes=["natural"], counts={"natural": 1}, progress=False)
    finally:
        tx_magic.analysis.unregister_pattern("broken")


def test_probes_are_repeatable_and_framed_with_the_model_special_tokens(minilm):
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    a, b = probes.repeated(minilm.tokenizer, rng1, 2), probes.repeated(minilm.tokenizer, rng2, 2)
    assert a == b
    ids = a[0].ids
    cls, sep = minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id
    assert ids[0] == cls and ids[-1] == sep and len(ids) == 2 * probes.REPEATED_LENGTH + 2
    body = ids[1:-1]
    assert body[: probes.REPEATED_LENGTH] == body[probes.REPEATED_LENGTH:]
    assert len(set(body)) == probes.REPEATED_LENGTH
    dup = probes.duplicate(minilm.tokenizer, rng1, 1)[0].ids[1:-1]
    assert len(set(dup)) < len(dup)
    assert len(probes.corpus()) >= 40
    long = probes.long(minilm.tokenizer, rng1, 1)[0].text
    assert len(minilm.tokenizer(long)["input_ids"]) >= probes.LONG_TOKENS
