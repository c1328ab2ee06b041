"""Reports inline each kind's value norms, so their "value" weighting works without a kernel; the Q/K and
Flow tabs (which need one) are not offered there, and traces without a model keep raw weights only."""

from __future__ import annotations

import base64

import numpy as np
from test_report import Page

import tx_magic
from tx_magic.report import render_html
from tx_magic.report.html import TRACE_ID

TEXT = "The animal didn't cross the street because it was too tired."


def trace_data(html: str) -> dict:
    return Page(html).json(TRACE_ID.format(0))


def test_a_model_trace_report_inlines_its_value_norms(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, TEXT)
    data = trace_data(render_html(trace))
    assert data["meta"]["analyses"] == {"self": ["value"]}  # no kernel for the Q/K and Flow tabs
    (entry,) = data["values"]
    layers, heads, q, k = trace.shape()
    assert entry["content"] == {"kind": "self", "layers": layers, "heads": heads, "queries": q, "keys": k,
                                "thumbnail_size": min(32, q)}
    norms, totals, _ = (base64.b64decode(b) for b in entry["buffers"])
    np.testing.assert_array_equal(np.frombuffer(norms, "<f4").reshape(layers, heads, k),
                                  trace.value_norms(per_key=True))
    expected = (trace.attention().astype(np.float64) * trace.value_norms(per_key=True)[:, :, None]).sum(-1)
    np.testing.assert_allclose(np.frombuffer(totals, "<f4").reshape(layers, heads, q), expected, rtol=1e-6)


def test_an_arrays_report_offers_no_value_weighting():
    trace = tx_magic.show(np.full((1, 2, 3, 3), 1 / 3, np.float32), ["a", "b", "c"]).trace
    data = trace_data(render_html(trace))
    assert data["values"] == [] and "analyses" not in data["meta"]
