"""Write js/tests/fixtures/analysis-fixture.json: Python's statistics, head types and rollout
for a few traces, so the TypeScript tests can check js/src/stats.ts and rollout agree (1e-5).

    python tests/make_analysis_fixture.py

Each case holds a trace as the widget sends it (``meta``, ``layers``: see make_wire_fixture.py)
and, per kind, ``stats`` (name -> layers x heads, null for NaN), ``types`` (layers x heads) and,
for self-attention kinds, ``rollout`` (layers x n*n). Cases: the wire fixture's
encoder-decoder trace (random weights, masks); attention built to have each head pattern
(previous, first, self, broad, local, induction) plus mixtures near no threshold; and a trace
with NaN / inf weights and a query row its mask leaves empty. Deterministic, so
tests/test_wire_in_step.py can check the file is current.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from make_wire_fixture import ROOT, build_trace, encode_trace, modules, write_fixture

FIXTURE = ROOT / "js" / "tests" / "fixtures" / "analysis-fixture.json"
N = 12
#: Token ids with a repeated run, so induction heads can be found.
IDS = (101, 5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9)


def _one_hot(cols: np.ndarray) -> np.ndarray:
    p = np.zeros((len(cols), len(cols)))
    p[np.arange(len(cols)), cols] = 1.0
    return p


def _rownorm(p: np.ndarray) -> np.ndarray:
    return p / p.sum(-1, keepdims=True)


def _patterns() -> np.ndarray:
    """Two causal layers of 7 heads: pure patterns, then the same blended with noise."""
    causal = np.tril(np.ones((N, N)))
    q = np.arange(N)
    local = np.zeros((N, N))
    for i in q:
        local[i, max(0, i - 2): i + 1] = 1
    induction = causal.copy() * 0.02
    modules()
    targets = importlib.import_module("tx_magic.core.tokens").induction_targets(IDS)
    for i, k in targets:
        induction[i, k] = 1.0
    pure = [
        _one_hot(np.maximum(q - 1, 0)),            # previous
        _one_hot(np.zeros(N, dtype=int)),           # first (sink)
        _one_hot(q),                                # self
        causal,                                     # broad (uniform)
        local,                                      # local
        induction,                                  # induction
        causal * np.linspace(1, 3, N),              # nothing dominant
    ]
    pure = np.stack([_rownorm(p) for p in pure])
    rng = np.random.default_rng(7)
    noise = _rownorm(rng.dirichlet(np.full(N, 0.5), size=(7, N)) * causal)
    blended = _rownorm(0.7 * pure + 0.3 * noise)
    return np.stack([pure, blended]).astype(np.float32)


def _pattern_trace() -> Any:
    _, trace_mod = modules()
    tokens = trace_mod.Tokens(text=tuple(f"t{i}" for i in IDS), ids=IDS)
    return trace_mod.Trace("fixture/patterns", {"input": tokens}, {"self": _patterns()},
                           masks={"self": np.tril(np.ones((N, N), dtype=bool))})


def _odd_trace() -> Any:
    """NaN and inf weights, and a padding query whose mask row is empty (its weights are all 0)."""
    _, trace_mod = modules()
    n = 6
    mask = np.ones((n, n), dtype=bool)
    mask[:, -1] = False
    mask[-1, :] = False
    rng = np.random.default_rng(11)
    att = _rownorm(rng.random((2, 3, n, n)) * mask + 1e-12) * mask
    att[0, 1, 2, 3] = np.nan
    att[1, 2, 1, 0] = np.inf
    tokens = trace_mod.Tokens(text=(*"abcde", "<pad>"), ids=(1, 2, 3, 1, 2, 0))
    return trace_mod.Trace("fixture/odd", {"input": tokens}, {"self": att.astype(np.float32)}, masks={"self": mask})


def _json_number(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _expected(trace: Any) -> dict[str, Any]:
    modules()
    analysis = importlib.import_module("tx_magic.analysis")
    out: dict[str, Any] = {}
    for kind in trace.kinds:
        layers, heads = trace.shape(kind)[:2]
        records = analysis.stats_records(trace, kind)

        def grid(key: str, records: list[dict[str, Any]] = records, layers: int = layers, heads: int = heads) -> list:
            return [[records[at * heads + h][key] for h in range(heads)] for at in range(layers)]

        entry: dict[str, Any] = {
            "stats": {name: [[_json_number(x) for x in row] for row in grid(name)] for name in analysis.STAT_NAMES},
            "types": grid("type"),
        }
        queries, keys = trace.tokens(kind)
        if queries is keys:
            entry["rollout"] = [[float(x) for x in layer.ravel()] for layer in analysis.rollout(trace, kind)]
        out[kind] = entry
    return out


def build_fixture() -> dict[str, Any]:
    cases = {}
    for name, trace in (("wire", build_trace()), ("patterns", _pattern_trace()), ("odd", _odd_trace())):
        meta, layers = encode_trace(trace)
        cases[name] = {"meta": meta, "layers": layers, "expected": _expected(trace)}
    return cases


if __name__ == "__main__":
    write_fixture(FIXTURE, build_fixture())
