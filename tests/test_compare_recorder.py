"""compare(a, b), user statistics and the Recorder, against computations written here from the definitions:
the difference is the arrays' difference, a registered statistic is the function applied by hand, the
fluctuation is the total variation between snapshots, and a snapshot leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2
from wired import WordIds, wired

import tx_magic
from tx_magic.analysis import unregister_statistic
from tx_magic.analysis.compare import CellsDiffer
from tx_magic.core.errors import OptionError, ShapeError, TxMagicError


@pytest.fixture
def diagonal():
    tx_magic.register_statistic("diagonal", lambda att, tokens: float(np.trace(att)) / len(tokens))
    yield
    unregister_statistic("diagonal")


def test_difference_is_a_minus_b_and_deltas_are_the_statistics(minilm, diagonal):
    a = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat on the mat.")
    b = tx_magic.capture(minilm.model, minilm.tokenizer, "The dog lay on the rug.")
    c = tx_magic.compare(a, b)
    assert c.cells and "differ" in c.note
    d = c.difference()
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, a.attention() - b.attention())
    deltas = c.deltas()
    sa, sb = a.stats(), b.stats()
    for name in ("entropy", "first", "diagonal"):
        np.testing.assert_allclose(deltas[f"{name}_delta"], sa[name] - sb[name], atol=1e-12)
        np.testing.assert_allclose(deltas[f"{name}_a"], sa[name], atol=0)
    same = tx_magic.compare(a, a)
    assert same.note.startswith("same tokens") and not same.difference().any()


def test_different_lengths_compare_statistics_only_and_say_so(minilm):
    a = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    b = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat on the mat today.")
    c = tx_magic.compare(a, b, labels=("short", "long"))
    assert not c.cells and "only the per-head statistics" in c.note and "short has 6x6 self cells, long 10x10" in c.note
    with pytest.raises(CellsDiffer, match="no cell-by-cell difference"):
        c.difference()
    assert len(c.deltas()) == 6 * 12


def test_models_of_different_shapes_are_refused(minilm):
    a = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    b = tx_magic.capture(wired(), WordIds(), "the cat sat")
    with pytest.raises(ShapeError, match="A has 6 layers x 12 heads, B 2 x 4"):
        tx_magic.compare(a, b)
    with pytest.raises(OptionError, match="two Traces"):
        tx_magic.compare(a, "text")


def test_a_registered_statistic_is_the_function_applied_by_hand(minilm, diagonal):
    def sep_share(att, tokens):
        sep = [i for i, t in enumerate(tokens) if t == "[SEP]"]
        return float(att[:, sep].sum(-1).mean())

    tx_magic.register_statistic("sep", sep_share)
    try:
        trace = tx_magic.capture(minilm.model, minilm.tokenizer, "A short sentence for a statistic.")
        table = trace.stats()
        att = trace.attention()
        n = att.shape[-1]
        for layer in range(6):
            for head in range(12):
                row = table[(table["layer"] == layer) & (table["head"] == head)].iloc[0]
                assert row["diagonal"] == pytest.approx(float(np.trace(att[layer, head])) / n, abs=1e-12)
                assert row["sep"] == pytest.approx(float(att[layer, head][:, n - 1].mean()), abs=1e-6)
        assert list(table.columns)[-3:] == ["diagonal", "sep", "type"]
    finally:
        unregister_statistic("sep")


def test_bad_statistics_get_one_clear_message(minilm):
    with pytest.raises(OptionError, match="already has"):
        tx_magic.register_statistic("entropy", lambda a, t: 0.0)
    tx_magic.register_statistic("words", lambda a, t: "many")
    try:
        trace = tx_magic.capture(minilm.model, minilm.tokenizer, "Some text.")
        with pytest.raises(TxMagicError, match="statistic 'words' gave str on layer 0, head 0: return a number"):
            trace.stats()
    finally:
        unregister_statistic("words")


def tx_magic_hooks(model: torch.nn.Module) -> list:
    """Hooks tx_magic left on the model (transformers installs output-capturing hooks of its own, for good)."""
    return [fn for m in model.modules() for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
            if getattr(fn, "__module__", "").startswith("tx_magic")]


def tv_by_hand(before: np.ndarray, now: np.ndarray) -> np.ndarray:
    layers, heads, q, _ = now.shape
    out = np.zeros(layers)
    for layer in range(layers):
        out[layer] = np.mean([0.5 * np.abs(now[layer, h, i].astype(np.float64) - before[layer, h, i]).sum()
                              for h in range(heads) for i in range(q)])
    return out


def test_recorder_snapshots_leave_the_training_model_as_it_was(gpt2_tokenizer):
    model = tiny_gpt2().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.tensor([gpt2_tokenizer("The cat sat on the mat because it was tired.")["input_ids"]])
    rec = tx_magic.Recorder(model, gpt2_tokenizer, "The cat sat on the mat because it was tired.")
    for step in range(4):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        params = [p.detach().clone() for p in model.parameters()]
        impl = model.config._attn_implementation
        rec.snapshot(step * 10)
        assert model.training and model.config._attn_implementation == impl
        assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
        assert all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), params, strict=True))
        assert not tx_magic_hooks(model)
        optimizer.step()
    assert rec.steps == [0, 10, 20, 30]
    fluct = rec.fluctuation()
    assert fluct.shape == (4, 2) and np.isnan(fluct[0]).all()
    for s in range(1, 4):
        np.testing.assert_allclose(fluct[s], tv_by_hand(rec.traces[s - 1].attention(), rec.traces[s].attention()),
                                   atol=1e-9)
    assert (fluct[1:] > 0).all()
    series = rec.series("previous")
    assert series.shape == (4, 2, 4)
    np.testing.assert_allclose(series[2], rec.traces[2].stats().pivot(index="layer", columns="head",
                                                                      values="previous").to_numpy())
    with pytest.raises(OptionError, match="steps must increase"):
        rec.snapshot(5)
    with pytest.raises(OptionError, match="no statistic or pattern"):
        rec.series("nope")


def test_recorder_restores_the_model_after_an_interrupt(gpt2_tokenizer, monkeypatch):
    model = tiny_gpt2().train()
    rec = tx_magic.Recorder(model, gpt2_tokenizer, "The cat sat on the mat.")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.transformer.h[1].attn, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rec.snapshot(0)
    assert model.training and not rec.traces
    assert not tx_magic_hooks(model)
    with pytest.raises(OptionError, match="no snapshot yet"):
        rec.show()
